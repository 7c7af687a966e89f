/**
 * The read path alone, without Nix: a cache synthesized through larder's database layer
 * (bench/synth.ts), served by larderd and by nginx from the same number of files, and wrk
 * against both, alternating. Seconds to set up instead of the minutes `npm run bench` spends
 * building data with Nix, so a change to the narinfo or NAR path can be measured right away.
 *
 *   cd server && node bench/reads.ts [--objects 20000] [--seconds 3] [--rounds 3] [--nar-mib 200]
 *        [--only hit,miss,token,distinct,nar] [--cpu-prof DIR] [--postgres] [--env K=V ...] [--keep]
 *        [--unsigned]   (paths stored without their signature, as before pushes signed: first reads sign)
 *
 * `--env` sets a variable in larderd's environment (e.g. LARDER_NARINFO_FAST_PATH=0, the switch
 * the fast-path test uses, to measure the framework path). One JSON line on stdout.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { finished } from "node:stream/promises";
import { openDb } from "../src/db/connect.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { createSynthCache, synthesizeCache } from "./synth.ts";
import { narinfoFile } from "./large.ts";
import { startNginx } from "./nginx.ts";
import { cpuSeconds, startLarderd } from "./larderd.ts";
import { runWrk, type LoadResult, type LoadRun } from "./wrk.ts";
import { ensureTools } from "./tools.ts";
import { startPostgres, type PostgresHandle } from "../test/support/postgres-cluster.ts";
import { machine } from "./report.ts";

const CACHE = "big";
const MiB = 1048576;

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "20000" },
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    "nar-mib": { type: "string", default: "200" },
    only: { type: "string", default: "hit,miss,token,distinct,nar" },
    "cpu-prof": { type: "string" },
    postgres: { type: "boolean", default: false },
    env: { type: "string", multiple: true, default: [] },
    keep: { type: "boolean", default: false },
    unsigned: { type: "boolean", default: false },
  },
  strict: true,
});
const objects = Number(values.objects);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const only = new Set(values.only.split(","));
const log = (s: string) => process.stderr.write(`reads: ${s}\n`);

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const tools = await ensureTools(false, log);
const work = await mkdtemp(join(tmpdir(), "larder-reads-"));
let pg: PostgresHandle | undefined;
const stops: Array<() => Promise<void>> = [];
try {
  if (values.postgres) pg = await startPostgres();
  const url = pg ? await pg.createDatabase() : `sqlite://${join(work, "larder.db")}`;
  const db = await openDb(url);
  let hashes: string[];
  let narKey: string;
  let narFileHash: string;
  const narBytes = Number(values["nar-mib"]) * MiB;
  try {
    await db.migrate();
    const cacheId = await createSynthCache(db, CACHE, true, null);
    const s = await synthesizeCache(db, { cacheId, objects, closureSize: 100, expiredShare: 0, now: Date.now(), unsigned: values.unsigned });
    hashes = s.hashes;
    log(`${s.objects} objects synthesized in ${s.seconds.toFixed(1)} s`);
    // One path gets a real stored NAR for the download runs.
    const row = await db.kysely.selectFrom("object").innerJoin("nar", "nar.id", "object.nar_id").select(["nar.id", "nar.storage_key", "nar.file_hash"]).where("object.store_path_hash", "=", hashes[0] as string).executeTakeFirstOrThrow();
    await db.kysely.updateTable("nar").set({ file_size: narBytes }).where("id", "=", row.id).execute();
    narKey = row.storage_key;
    narFileHash = row.file_hash;
  } finally {
    await db.close();
  }
  const larderDir = join(work, "larder");
  const narPath = join(larderDir, "storage", ...narKey.split("/"));
  await mkdir(dirname(narPath), { recursive: true });
  const out = createWriteStream(narPath);
  for (let i = 0; i < narBytes; i += MiB) out.write(randomBytes(MiB));
  out.end();
  await finished(out);

  const flat = join(work, "flat");
  await mkdir(join(flat, "nar"), { recursive: true });
  await writeFile(join(flat, "nix-cache-info"), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
  for (let i = 0; i < hashes.length; i += 1000) await Promise.all(hashes.slice(i, i + 1000).map((h) => writeFile(join(flat, `${h}.narinfo`), narinfoFile(h))));
  const { link } = await import("node:fs/promises");
  await link(narPath, join(flat, "nar", `${narFileHash}.nar.zst`));

  const nginx = await startNginx(tools.nginx as string, join(work, "nginx"), flat, CACHE);
  stops.push(() => nginx.stop());
  for (const kv of values.env) {
    const eq = kv.indexOf("=");
    process.env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const larderd = await startLarderd({ dir: larderDir, databaseUrl: url, storage: { type: "local" }, ...(values["cpu-prof"] !== undefined && { cpuProfDir: values["cpu-prof"] }) });
  stops.unshift(() => larderd.stop());
  const tokenOut = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*"])).trim().split("\n");
  const token = tokenOut[tokenOut.length - 1] as string;
  const nginxOrigin = new URL(nginx.cacheUrl).origin;
  const { readFileSync } = await import("node:fs");
  const nginxWorker = Number(readFileSync(`/proc/${nginx.pid}/task/${nginx.pid}/children`, "utf8").trim().split(" ")[0]);
  const wrkDir = join(work, "wrk");
  await mkdir(wrkDir, { recursive: true });

  const results: Record<string, { larder: number; nginx: number; ratio: number; larderCpuUsPerReq: number; nginxCpuUsPerReq: number; detail: string }> = {};
  const failures: Record<string, string> = {};
  const compare = async (key: string, run: Omit<LoadRun, "origin">, larderExtra: Partial<LoadRun> = {}, unit: "rps" | "mibPerSec" = "rps") => {
    try {
      await compareOnce(key, run, larderExtra, unit);
    } catch (e) {
      // A run that finished no request (a download longer than the run, on a loaded machine) is reported, not fatal.
      failures[key] = (e as Error).message;
      log(`${key}: ${failures[key]}`);
    }
  };
  const compareOnce = async (key: string, run: Omit<LoadRun, "origin">, larderExtra: Partial<LoadRun>, unit: "rps" | "mibPerSec") => {
    let bestL: LoadResult | undefined;
    let bestN: LoadResult | undefined;
    let cpu = 0;
    let nginxCpu = 0;
    for (let i = 0; i < rounds; i++) {
      const nBefore = cpuSeconds(nginxWorker);
      const n = await runWrk(tools.wrk as string, wrkDir, { ...run, origin: nginxOrigin });
      const nUsed = cpuSeconds(nginxWorker) - nBefore;
      const before = cpuSeconds(larderd.pid);
      const l = await runWrk(tools.wrk as string, wrkDir, { ...run, ...larderExtra, origin: larderd.url });
      const used = cpuSeconds(larderd.pid) - before;
      if (!bestN || n[unit] > bestN[unit]) {
        bestN = n;
        nginxCpu = nUsed;
      }
      if (!bestL || l[unit] > bestL[unit]) {
        bestL = l;
        cpu = used;
      }
    }
    const l = bestL as LoadResult;
    const n = bestN as LoadResult;
    results[key] = { larder: Math.round(l[unit]), nginx: Math.round(n[unit]), ratio: Number((l[unit] / n[unit]).toFixed(3)), larderCpuUsPerReq: Number(((cpu * 1e6) / l.requests).toFixed(1)), nginxCpuUsPerReq: Number(((nginxCpu * 1e6) / n.requests).toFixed(1)), detail: `larder p50 ${l.p50Us} µs, nginx p50 ${n.p50Us} µs` };
    log(`${key}: larder ${l[unit].toFixed(0)} nginx ${n[unit].toFixed(0)} → ${(l[unit] / n[unit]).toFixed(2)}×; CPU per request larderd ${results[key].larderCpuUsPerReq} µs, nginx ${results[key].nginxCpuUsPerReq} µs`);
  };
  const hits = hashes.slice(0, 300).map((h) => `/${CACHE}/${h}.narinfo`);
  const misses = Array.from({ length: 1000 }, () => `/${CACHE}/${encodeNixBase32(randomBytes(20))}.narinfo`);
  for (const c of [1, 16]) {
    if (only.has("hit")) await compare(`narinfo_hit_ratio_c${c}`, { paths: hits, connections: c, seconds, expect: "ok" });
    if (only.has("miss")) await compare(`narinfo_miss_ratio_c${c}`, { paths: misses, connections: c, seconds, expect: "missing" });
  }
  if (only.has("token")) await compare("narinfo_hit_ratio_c16_token", { paths: hits, connections: 16, seconds, expect: "ok" }, { headers: { authorization: `Bearer ${token}` } });
  if (only.has("distinct")) {
    const all = () => shuffled(hashes).map((h) => `/${CACHE}/${h}.narinfo`);
    await compare("narinfo_distinct_ratio_c16", { paths: all(), connections: 16, seconds, expect: "ok" });
  }
  if (only.has("nar")) {
    for (const c of [1, 16]) await compare(`nar_ratio_c${c}`, { paths: [`/${CACHE}/nar/${narFileHash}.nar.zst`], connections: c, seconds, expect: "ok" }, {}, "mibPerSec");
  }
  process.stdout.write(`${JSON.stringify({ objects, seconds, rounds, backend: pg ? "postgres" : "sqlite", env: values.env, machine: machine(), results, failures })}\n`);
} finally {
  for (const stop of stops) await stop().catch(() => undefined);
  await pg?.stop();
  if (values.keep) log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
