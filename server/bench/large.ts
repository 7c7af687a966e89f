/**
 * The large-cache measurements: a cache of `objects` paths synthesized through larder's own
 * database layer (bench/synth.ts), then
 *   - narinfo reads where every request names a different path (the in-memory answers cannot
 *     help), against nginx serving the same number of narinfo files; the first pass after
 *     larderd starts (cold) and a second one (warm);
 *   - get-missing-paths with 10,000 hashes, half of them present, on that cache;
 *   - garbage collection of it (about 20% expired, closures intact), in this process, as
 *     objects deleted per second, with a check that no closure was broken;
 *   - optionally GC of a separate cache of 1M objects (closures of 100, 10% expired).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { openDb, type Db } from "../src/db/connect.ts";
import { collectGarbage } from "../src/gc/run.ts";
import { createLocalStorage } from "../src/storage/local.ts";
import { poolOf } from "../src/storage/pool.ts";
import { createSynthCache, danglingReferences, missingPathsQuestion, synthesizeCache, synthHash } from "./synth.ts";
import { startNginx } from "./nginx.ts";
import { startLarderd, type Larderd, type StorageSpec } from "./larderd.ts";
import { runWrk, type LoadResult } from "./wrk.ts";
import type { Figure, Figures } from "./suite.ts";

const BIG = "big";
const DAY = 86_400;

export interface LargeOptions {
  work: string;
  objects: number;
  gc1m: boolean;
  seconds: number;
  wrk: string;
  nginx: string;
  databaseUrl(): Promise<string>;
  storage: StorageSpec;
  log(line: string): void;
}

/** A narinfo of the size larder answers for these paths, for nginx to serve as a file. */
export function narinfoFile(hash: string): string {
  return [
    `StorePath: /nix/store/${hash}-synth`,
    `URL: nar/${hash}aaaaaaaaaaaaaaaaaaaa.nar.zst`,
    "Compression: zstd",
    `FileHash: sha256:${hash}aaaaaaaaaaaaaaaaaaaa`,
    "FileSize: 500",
    `NarHash: sha256:${hash}${hash.slice(0, 20)}`,
    "NarSize: 1000",
    `References: ${hash}-synth ${synthHash(1)}-synth ${synthHash(2)}-synth`,
    `Sig: ${BIG}-1:${"A".repeat(86)}==`,
    "",
  ].join("\n");
}

function shuffled<T>(xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** One GC run over `db` at `now`, timing the object step apart from the rest. */
export async function timedGc(db: Db, storagePath: string, now: number, objectBatch?: number): Promise<{ deleted: number; objectsSeconds: number; totalSeconds: number }> {
  let objectsEnd: number | undefined;
  const started = performance.now();
  const stats = await collectGarbage(
    {
      db,
      pool: poolOf(await createLocalStorage({ path: storagePath }), pino({ level: "silent" })),
      gc: { intervalSeconds: 0, defaultRetentionSeconds: 7 * DAY, graceSeconds: 3600 },
      log: pino({ level: "silent" }),
      checkpoint: (step) => void (step !== "objects" && objectsEnd === undefined && (objectsEnd = performance.now())),
      ...(objectBatch !== undefined && { objectBatch }),
    },
    now,
  );
  const end = performance.now();
  return { deleted: stats.objects, objectsSeconds: ((objectsEnd ?? end) - started) / 1000, totalSeconds: (end - started) / 1000 };
}

async function missingPaths(url: string, token: string, present: string[]): Promise<Figure> {
  const times: number[] = [];
  for (let round = 0; round < 6; round++) {
    const hashes = missingPathsQuestion(present, round);
    const started = process.hrtime.bigint();
    const res = await fetch(`${url}/_api/v1/get-missing-paths`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ cache: BIG, store_path_hashes: hashes }) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`get-missing-paths answered ${res.status}: ${text.slice(0, 200)}`);
    // The first round writes the access times of the present half; the rest find them fresh.
    if (round > 0) times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { larder: times[2] as number, reference: null, unit: "ms", detail: `median of 5 after one first call; 10,000 hashes, half present, different ones each call` };
}

export async function runLarge(o: LargeOptions, figures: Figures): Promise<void> {
  const url = await o.databaseUrl();
  const now = Date.now();
  let present: string[];
  let objects: number;
  const db = await openDb(url);
  try {
    await db.migrate();
    const cacheId = await createSynthCache(db, BIG, true, 7 * DAY);
    o.log(`large cache: synthesizing ${o.objects} objects through the database layer`);
    const synth = await synthesizeCache(db, { cacheId, objects: o.objects, closureSize: 100, expiredShare: 0.2, now });
    o.log(`large cache: ${synth.objects} objects in ${synth.seconds.toFixed(0)} s; GC (about 20% expired)`);
    // GC first: the reads below would count as use and keep what they touched.
    const r = await timedGc(db, join(o.work, "gc-large-storage"), now);
    const dangling = await danglingReferences(db, cacheId);
    figures.gc_delete_objects_per_s = {
      larder: r.deleted / r.objectsSeconds,
      reference: null,
      unit: "objects/s",
      detail: `${r.deleted} of ${synth.objects} objects deleted (${synth.expired} expired) in ${r.objectsSeconds.toFixed(1)} s, whole run ${r.totalSeconds.toFixed(1)} s; references left dangling: ${dangling}`,
    };
    if (r.deleted !== synth.expired || dangling !== 0) throw new Error(`GC deleted ${r.deleted} objects (expected ${synth.expired}) and left ${dangling} references dangling`);
    present = (await db.kysely.selectFrom("object").select("store_path_hash").where("cache_id", "=", cacheId).execute()).map((x) => x.store_path_hash);
    objects = present.length;
  } finally {
    await db.close();
  }

  const flat = join(o.work, "flat-big");
  await mkdir(flat, { recursive: true });
  await writeFile(join(flat, "nix-cache-info"), "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
  for (let i = 0; i < present.length; i += 1000) {
    await Promise.all(present.slice(i, i + 1000).map((h) => writeFile(join(flat, `${h}.narinfo`), narinfoFile(h))));
  }
  const nginx = await startNginx(o.nginx, join(o.work, "nginx-big"), flat, BIG);
  let larderd: Larderd | undefined;
  try {
    larderd = await startLarderd({ dir: join(o.work, "larder-big"), databaseUrl: url, storage: o.storage });
    const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
    const token = out[out.length - 1] as string;
    // Each run its own order: a pass over as many distinct paths as it has time for.
    const dir = join(o.work, "wrk-big");
    await mkdir(dir, { recursive: true });
    const pass = async (origin: string): Promise<LoadResult> =>
      runWrk(o.wrk, dir, { origin, paths: shuffled(present).map((h) => `/${BIG}/${h}.narinfo`), connections: 16, seconds: o.seconds, expect: "ok" });
    o.log(`narinfo, every request a different path of ${objects}, 16 connections: cold, then warm`);
    const nginxOrigin = new URL(nginx.cacheUrl).origin;
    const coldRef = await pass(nginxOrigin);
    const cold = await pass(larderd.url);
    const warmRef = await pass(nginxOrigin);
    const warm = await pass(larderd.url);
    figures.narinfo_distinct_ratio_c16 = {
      larder: warm.rps,
      reference: warmRef.rps,
      unit: "req/s",
      detail: `${objects} objects; warm (second pass); cold: larder ${cold.rps.toFixed(0)} req/s vs nginx ${coldRef.rps.toFixed(0)} (${(cold.rps / coldRef.rps).toFixed(2)}×); larder p50 ${warm.p50Us} µs`,
    };
    o.log("get-missing-paths, 10,000 hashes (half present) on the large cache");
    figures.missing_paths_10k_large_ms = { ...(await missingPaths(larderd.url, token, present)), detail: `${objects} objects; median of 5 after one first call` };
  } finally {
    await larderd?.stop();
    await nginx.stop();
  }

  if (!o.gc1m) {
    figures.gc_1m_seconds = { larder: null, reference: null, unit: "s", reason: "run with --gc-1m (synthesizes 1M objects first: minutes)" };
    return;
  }
  const url1m = await o.databaseUrl();
  const db1m = await openDb(url1m);
  try {
    await db1m.migrate();
    const cacheId = await createSynthCache(db1m, BIG, true, 7 * DAY);
    o.log("GC on 1M objects: synthesizing (closures of 100, 10% expired)");
    const s = await synthesizeCache(db1m, { cacheId, objects: 1_000_000, closureSize: 100, expiredShare: 0.1, now, log: o.log });
    const r = await timedGc(db1m, join(o.work, "gc-1m-storage"), now);
    const dangling = await danglingReferences(db1m, cacheId);
    figures.gc_1m_seconds = { larder: r.totalSeconds, reference: null, unit: "s", detail: `${r.deleted} of ${s.objects} deleted (${s.expired} expired), object step ${r.objectsSeconds.toFixed(1)} s; dangling references: ${dangling}` };
    if (r.deleted !== s.expired || dangling !== 0) throw new Error(`GC on 1M deleted ${r.deleted} objects (expected ${s.expired}) and left ${dangling} references dangling`);
  } finally {
    await db1m.close();
  }
}
