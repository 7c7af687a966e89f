/**
 * `node server/bench/ingest-closure.ts [--paths 300] [--medium-mib 200] [--rounds 2] [--jobs N]`
 * — closure and big-NAR ingest side by side, without the read measurements of `npm run bench`:
 *   - `nix copy --to file://` of the closure (the Nix client alone), in Nix's default xz and in zstd;
 *   - `nix copy` of it to larder's push URL in the same two compressions (a fresh cache each time);
 *   - `larder push` of it (a fresh cache each time);
 *   - `larder push` of the medium NAR against `zstd -3 | sha256sum` of its bytes.
 * The runs alternate round by round so they share the machine's background load; the best of each
 * is kept. larderd's CPU time (user + system, from /proc) per pushed path is reported for each push.
 * Prints one JSON line (and a table on stderr).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { buildData, createBenchNix, flatNarUrl, totalNarBytes, type BenchNix } from "./data.ts";
import { childrenCpuSeconds, cpuSeconds, startLarderd } from "./larderd.ts";
import { limitPipeline } from "./limit.ts";
import { run } from "./proc.ts";
import { ensureTools } from "./tools.ts";

const CLIENT_BIN = fileURLToPath(new URL("../bin/larder.js", import.meta.url));
const MiB = 1048576;
type RunName = "file_xz" | "file_zstd" | "nix_copy_xz" | "nix_copy_zstd" | "larder_push" | "larder_push_plain" | "larder_push_medium" | "larder_push_medium_plain";
type Timing = { seconds: number; cpuUs: number; clientCpuS: number };

const { values } = parseArgs({
  options: {
    paths: { type: "string" },
    "medium-mib": { type: "string" },
    rounds: { type: "string" },
    jobs: { type: "string" },
    "skip-xz": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const paths = Number(values.paths ?? 300);
const mediumMiB = Number(values["medium-mib"] ?? 200);
const rounds = Number(values.rounds ?? 2);
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

const work = await mkdtemp(join(tmpdir(), "larder-ingest-closure-"));
const tools = await ensureTools(false, log);
const larderd = await startLarderd({ dir: join(work, "larderd"), databaseUrl: `sqlite://${join(work, "larder.db")}`, storage: { type: "local" } });
try {
  const nx: BenchNix = await createBenchNix(join(work, "nix"));
  log(`building ${paths} paths and a ${mediumMiB} MiB NAR`);
  const data = await buildData(nx, { closurePaths: paths, mediumMiB, bigMiB: 1 }, randomBytes(4).toString("hex"));
  const closureMiB = totalNarBytes(data.closure) / MiB;
  const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
  const token = out[out.length - 1] as string;
  await nx.setToken(larderd.url, token);
  const clientEnv = { ...nx.env(), XDG_CONFIG_HOME: join(work, "client-config") };
  await run(process.execPath, [CLIENT_BIN, "login", "bench", `${larderd.url}/`, token], { env: clientEnv, timeoutMs: 60_000 });

  let n = 0;
  const fresh = async (): Promise<string> => {
    const name = `c${++n}`;
    await larderd.admin(["create-cache", name]);
    return name;
  };
  const timed = async (fn: () => Promise<unknown>): Promise<Timing> => {
    const cpu = cpuSeconds(larderd.pid);
    const client = childrenCpuSeconds();
    const t = process.hrtime.bigint();
    await fn();
    return { seconds: Number(process.hrtime.bigint() - t) / 1e9, cpuUs: (cpuSeconds(larderd.pid) - cpu) * 1e6, clientCpuS: childrenCpuSeconds() - client };
  };
  const nixCopy = (to: string, p: string) => nx.nix(["nix", "copy", "--store", nx.store, "--to", to, p]);
  const larderPush = (cache: string, p: string, ...flags: string[]) =>
    run(process.execPath, [CLIENT_BIN, "push", `bench:${cache}`, p, "--store", nx.store, ...(values.jobs ? ["--jobs", values.jobs] : []), ...flags], { env: clientEnv, timeoutMs: 1_800_000 });

  // Each run is prepared (its fresh cache created) before it is timed.
  const runs: Record<RunName, () => Promise<() => Promise<unknown>>> = {
    file_xz: async () => () => nixCopy(`file://${join(work, `flat-${++n}`)}`, data.closureRoot),
    file_zstd: async () => () => nixCopy(`file://${join(work, `flat-${++n}`)}?compression=zstd`, data.closureRoot),
    nix_copy_xz: async () => ((c) => () => nixCopy(`${larderd.url}/_push/${c}`, data.closureRoot))(await fresh()),
    nix_copy_zstd: async () => ((c) => () => nixCopy(`${larderd.url}/_push/${c}?compression=zstd`, data.closureRoot))(await fresh()),
    larder_push: async () => ((c) => () => larderPush(c, data.closureRoot))(await fresh()),
    larder_push_plain: async () => ((c) => () => larderPush(c, data.closureRoot, "--no-compress"))(await fresh()),
    larder_push_medium: async () => ((c) => () => larderPush(c, data.medium.path))(await fresh()),
    larder_push_medium_plain: async () => ((c) => () => larderPush(c, data.medium.path, "--no-compress"))(await fresh()),
  };
  // Nix's xz is slow on this data (about 1 MiB/s of NAR on a loaded 2-core machine): skippable while iterating.
  if (values["skip-xz"]) for (const k of ["file_xz", "nix_copy_xz"] as const) delete (runs as Partial<typeof runs>)[k];
  const flatNone = join(work, "flat-none");
  await nixCopy(`file://${flatNone}?compression=none`, data.medium.path);
  const mediumNar = join(flatNone, await flatNarUrl(flatNone, data.medium.path));
  const best: Partial<Record<RunName, Timing>> = {};
  let limit3 = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(runs) as RunName[]) {
      const t = await timed(await (runs[name] as () => Promise<() => Promise<unknown>>)());
      log(`round ${r + 1}: ${name} ${t.seconds.toFixed(2)} s, larderd CPU ${(t.cpuUs / 1e6).toFixed(2)} s, client CPU ${t.clientCpuS.toFixed(2)} s`);
      const was = best[name];
      if (!was || t.seconds < was.seconds) best[name] = t;
    }
    limit3 = Math.min(limit3, await limitPipeline(tools as { zstd: string; sha256sum: string }, [mediumNar], 3));
  }
  const b = best as Record<Exclude<RunName, "file_xz" | "nix_copy_xz">, Timing> & Partial<Record<"file_xz" | "nix_copy_xz", Timing>>;
  const mibs = (s: { seconds: number }) => closureMiB / s.seconds;
  const result = {
    paths: data.closure.length,
    closure_mib: closureMiB,
    medium_mib: data.medium.narSize / MiB,
    mib_per_s: Object.fromEntries(Object.entries(b).map(([k, v]) => [k, k.startsWith("larder_push_medium") ? data.medium.narSize / MiB / v.seconds : mibs(v)])),
    zstd3_sha256_mib_per_s: data.medium.narSize / MiB / limit3,
    ingest_ratio_larder_push_closure_vs_file: mibs(b.larder_push) / mibs(b.file_zstd),
    ingest_ratio_larder_push_plain_closure_vs_file: mibs(b.larder_push_plain) / mibs(b.file_zstd),
    ingest_ratio_nix_copy_closure_vs_file: b.nix_copy_xz && b.file_xz ? mibs(b.nix_copy_xz) / mibs(b.file_xz) : null,
    ingest_ratio_nix_copy_zstd_closure_vs_file: mibs(b.nix_copy_zstd) / mibs(b.file_zstd),
    ingest_ratio_larder_push_zstd3: limit3 / b.larder_push_medium.seconds,
    ingest_ratio_larder_push_plain_zstd3: limit3 / b.larder_push_medium_plain.seconds,
    server_us_per_path: {
      nix_copy_xz: b.nix_copy_xz ? b.nix_copy_xz.cpuUs / data.closure.length : null,
      nix_copy_zstd: b.nix_copy_zstd.cpuUs / data.closure.length,
      larder_push: b.larder_push.cpuUs / data.closure.length,
      larder_push_plain: b.larder_push_plain.cpuUs / data.closure.length,
    },
    client_cpu_s: Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v.clientCpuS])),
    larderd_cpu_s_medium: { larder_push: b.larder_push_medium.cpuUs / 1e6, larder_push_plain: b.larder_push_medium_plain.cpuUs / 1e6 },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await larderd.stop();
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
