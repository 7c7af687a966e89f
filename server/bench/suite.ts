/**
 * The measurements, each taken from larder and its reference in the same run: reads against
 * nginx on the same paths, ingest against `zstd | sha256sum` on the same NAR bytes.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { buildData, createBenchNix, flatNarUrl, storeHash, totalNarBytes, type BenchData, type BenchNix, type PathInfo, type Sizes } from "./data.ts";
import { startNginx } from "./nginx.ts";
import { cpuSeconds, sampleRss, startLarderd, type Larderd, type StorageSpec } from "./larderd.ts";
import { runLarge } from "./large.ts";
import { limitPipeline } from "./limit.ts";
import { runWrk, type LoadResult, type LoadRun } from "./wrk.ts";
import { run } from "./proc.ts";
import type { ToolPaths } from "./tools.ts";
import { startPostgres, type PostgresHandle } from "../test/support/postgres-cluster.ts";
import { startS3rver, type S3rverHandle } from "../test/support/s3rver.ts";

export interface SuiteOptions {
  work: string;
  sizes: Sizes;
  seconds: number;
  rounds: number;
  postgres: boolean;
  s3: boolean;
  cpuProfDir?: string;
  /** Paths in the synthesized large cache (bench/large.ts); 0 skips those measurements. */
  largeObjects: number;
  /** Also GC a synthesized cache of 1M objects. */
  gc1m: boolean;
  log(line: string): void;
}

/** One figure: larder's value, the reference's, and why it is missing when it is. */
export interface Figure {
  larder: number | null;
  reference: number | null;
  unit: string;
  detail?: string;
  reason?: string;
}

export type Figures = Record<string, Figure>;

const CACHE = "bench";
const PUSH_CACHE = "bench-push";
const MiB = 1048576;
const CLIENT_MAIN = fileURLToPath(new URL("../src/client/main.ts", import.meta.url));
const CLIENT_BIN = fileURLToPath(new URL("../bin/larder.js", import.meta.url));

function randomStoreHash(): string {
  return encodeNixBase32(randomBytes(20));
}

interface Backend {
  databaseUrl(): Promise<string>;
  storage(prefix: string): StorageSpec;
  stop(): Promise<void>;
}

async function startBackend(o: SuiteOptions): Promise<Backend> {
  let pg: PostgresHandle | undefined;
  let s3: S3rverHandle | undefined;
  try {
    if (o.postgres) pg = await startPostgres();
    if (o.s3) s3 = await startS3rver();
  } catch (e) {
    await pg?.stop();
    throw e;
  }
  let n = 0;
  return {
    async databaseUrl() {
      n++;
      return pg ? pg.createDatabase() : `sqlite://${join(o.work, `larder-${n}.db`)}`;
    },
    storage(prefix) {
      if (!s3) return { type: "local" };
      return { type: "s3", endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.credentials.accessKeyId, secretAccessKey: s3.credentials.secretAccessKey, prefix };
    },
    async stop() {
      await s3?.stop();
      await pg?.stop();
    },
  };
}

async function startInstance(o: SuiteOptions, backend: Backend, name: string, profile: boolean): Promise<{ larderd: Larderd; token: string }> {
  const larderd = await startLarderd({
    dir: join(o.work, name),
    databaseUrl: await backend.databaseUrl(),
    storage: backend.storage(name),
    ...(profile && o.cpuProfDir !== undefined && { cpuProfDir: o.cpuProfDir }),
  });
  try {
    await larderd.admin(["create-cache", CACHE, "--public"]);
    await larderd.admin(["create-cache", PUSH_CACHE, "--public"]);
    const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
    return { larderd, token: out[out.length - 1] as string };
  } catch (e) {
    await larderd.stop();
    throw e;
  }
}

/** Best of `rounds`, alternating the two servers so both see the same background load. */
async function compareLoad(
  o: SuiteOptions,
  wrk: string,
  larder: LoadRun,
  reference: LoadRun,
): Promise<{ larder: LoadResult; reference: LoadResult }> {
  const dir = join(o.work, "wrk");
  await mkdir(dir, { recursive: true });
  let best: { larder?: LoadResult; reference?: LoadResult } = {};
  for (let i = 0; i < o.rounds; i++) {
    const r = await runWrk(wrk, dir, reference);
    const l = await runWrk(wrk, dir, larder);
    if (!best.reference || r.rps > best.reference.rps) best.reference = r;
    if (!best.larder || l.rps > best.larder.rps) best.larder = l;
  }
  return best as { larder: LoadResult; reference: LoadResult };
}

const latency = (r: LoadResult) => `p50 ${r.p50Us} µs, p99 ${r.p99Us} µs`;

async function nixCopy(nx: BenchNix, to: string, paths: string[]): Promise<number> {
  return (await nx.nix(["nix", "copy", "--store", nx.store, "--to", to, ...paths])).seconds;
}

/** `larder push` of `paths` (with their closures) into PUSH_CACHE; seconds, or why it cannot run. */
async function larderPush(o: SuiteOptions, nx: BenchNix, url: string, token: string, paths: string[]): Promise<{ seconds: number } | { reason: string }> {
  if (!existsSync(CLIENT_MAIN)) return { reason: "larder push is not written yet (server/src/client/main.ts is missing)" };
  const env = { ...nx.env(), XDG_CONFIG_HOME: join(o.work, "client-config") };
  try {
    await run(process.execPath, [CLIENT_BIN, "login", "bench", `${url}/`, token], { env, timeoutMs: 60_000 });
    return { seconds: (await run(process.execPath, [CLIENT_BIN, "push", `bench:${PUSH_CACHE}`, ...paths, "--store", nx.store], { env, timeoutMs: 1_800_000 })).seconds };
  } catch (e) {
    return { reason: `larder push failed: ${(e as Error).message.split("\n")[0]?.slice(0, 300)}` };
  }
}

export interface SuiteResult {
  figures: Figures;
  data: { closurePaths: number; closureMiB: number; mediumMiB: number; bigMiB: number; buildSeconds: number };
}

export async function runSuite(o: SuiteOptions, tools: ToolPaths): Promise<SuiteResult> {
  const figures: Figures = {};
  const nx = await createBenchNix(join(o.work, "nix"));
  o.log(`building data with Nix: ${o.sizes.closurePaths} paths, ${o.sizes.mediumMiB} MiB and ${o.sizes.bigMiB} MiB NARs`);
  const data: BenchData = await buildData(nx, o.sizes, randomBytes(4).toString("hex"));
  const closureBytes = totalNarBytes(data.closure);
  const mediumBytes = data.medium.narSize;

  o.log("writing the reference caches with nix copy --to file://");
  const flatZstd = join(o.work, "flat-zstd");
  const flatNone = join(o.work, "flat-none");
  // Timed too: what the Nix client alone needs to push the same paths, with no server at all.
  const fileClosureSecs = await nixCopy(nx, `file://${flatZstd}?compression=zstd`, [data.closureRoot]);
  // And in Nix 2.8's default compression (xz), the reference for `nix copy` to larder with its defaults.
  const fileClosureXzSecs = await nixCopy(nx, `file://${join(o.work, "flat-xz")}`, [data.closureRoot]);
  const fileMediumSecs = await nixCopy(nx, `file://${flatZstd}?compression=zstd`, [data.medium.path]);
  await nixCopy(nx, `file://${flatNone}?compression=none`, [data.closureRoot, data.medium.path]);
  const narFile = async (p: PathInfo) => join(flatNone, await flatNarUrl(flatNone, p.path));
  const mediumNar = await narFile(data.medium);
  const closureNars = await Promise.all(data.closure.map(narFile));

  o.log("measuring the limit: zstd | sha256sum on the same NAR bytes");
  const limit = {
    medium1: mediumBytes / MiB / (await limitPipeline(tools as { zstd: string; sha256sum: string }, [mediumNar], 1)),
    medium3: mediumBytes / MiB / (await limitPipeline(tools as { zstd: string; sha256sum: string }, [mediumNar], 3)),
    closure1: closureBytes / MiB / (await limitPipeline(tools as { zstd: string; sha256sum: string }, closureNars, 1)),
  };

  const nginx = await startNginx(tools.nginx as string, join(o.work, "nginx"), flatZstd, CACHE);
  let backend: Backend;
  try {
    backend = await startBackend(o);
  } catch (e) {
    await nginx.stop();
    throw e;
  }
  try {
    // --- instance A: ingest by nix copy, then every read measurement ---
    const a = await startInstance(o, backend, "larder-a", true);
    try {
      await nx.setToken(a.larderd.url, a.token);
      const to = `${a.larderd.url}/${CACHE}?compression=zstd`;
      o.log("ingest: nix copy of the closure and of the medium NAR");
      const cpuBefore = cpuSeconds(a.larderd.pid);
      const closureSecs = await nixCopy(nx, to, [data.closureRoot]);
      const closureCpu = cpuSeconds(a.larderd.pid) - cpuBefore;
      const mediumSecs = await nixCopy(nx, to, [data.medium.path]);
      const copyMedium = mediumBytes / MiB / mediumSecs;
      const copyClosure = closureBytes / MiB / closureSecs;
      figures.ingest_ratio_nix_copy = { larder: copyMedium, reference: limit.medium1, unit: "MiB/s", detail: `${o.sizes.mediumMiB} MiB NAR vs zstd -1 | sha256sum; nix copy --to file:// of it: ${(mediumBytes / MiB / fileMediumSecs).toFixed(0)} MiB/s` };
      figures.ingest_ratio_nix_copy_zstd3 = { larder: copyMedium, reference: limit.medium3, unit: "MiB/s", detail: `${o.sizes.mediumMiB} MiB NAR vs zstd -3 | sha256sum` };
      figures.ingest_ratio_nix_copy_closure = { larder: copyClosure, reference: limit.closure1, unit: "MiB/s", detail: `${data.closure.length}-path closure vs zstd -1 | sha256sum; nix copy --to file:// of it: ${(closureBytes / MiB / fileClosureSecs).toFixed(0)} MiB/s` };
      figures.ingest_ratio_nix_copy_zstd_closure_vs_file = { larder: copyClosure, reference: closureBytes / MiB / fileClosureSecs, unit: "MiB/s", detail: `${data.closure.length}-path closure in zstd: nix copy to larder vs nix copy --to file:// (the client alone)` };
      figures.ingest_closure_server_us_per_path = { larder: (closureCpu * 1e6) / data.closure.length, reference: null, unit: "µs", detail: `larderd's CPU time (user + system) during nix copy of the ${data.closure.length}-path closure in zstd, per path` };
      o.log("ingest: nix copy of the closure to the push URL in Nix's default compression (xz)");
      const xzCpuBefore = cpuSeconds(a.larderd.pid);
      const closureXzSecs = await nixCopy(nx, `${a.larderd.url}/_push/${PUSH_CACHE}`, [data.closureRoot]);
      const closureXzCpu = cpuSeconds(a.larderd.pid) - xzCpuBefore;
      figures.ingest_ratio_nix_copy_closure_vs_file = { larder: closureBytes / MiB / closureXzSecs, reference: closureBytes / MiB / fileClosureXzSecs, unit: "MiB/s", detail: `${data.closure.length}-path closure in xz (Nix's default): nix copy to larder's push URL vs nix copy --to file:// (the client alone)` };
      figures.ingest_closure_xz_server_us_per_path = { larder: (closureXzCpu * 1e6) / data.closure.length, reference: null, unit: "µs", detail: `larderd's CPU time (user + system, not the xz decoders it starts) during nix copy of the closure in xz, per path` };

      const base = (u: string) => new URL(u).origin;
      const hits = data.closure.map((p) => `/${CACHE}/${storeHash(p.path)}.narinfo`);
      const misses = Array.from({ length: 1000 }, () => `/${CACHE}/${randomStoreHash()}.narinfo`);
      for (const [kind, paths, expect] of [["hit", hits, "ok"], ["miss", misses, "missing"]] as const) {
        for (const c of [1, 16]) {
          o.log(`narinfo ${kind}s, ${c} connection${c > 1 ? "s" : ""}`);
          const common = { paths, connections: c, seconds: o.seconds, expect } as const;
          const r = await compareLoad(o, tools.wrk as string, { ...common, origin: a.larderd.url }, { ...common, origin: base(nginx.cacheUrl) });
          figures[`narinfo_${kind}_ratio_c${c}`] = { larder: r.larder.rps, reference: r.reference.rps, unit: "req/s", detail: `larder ${latency(r.larder)}; nginx ${latency(r.reference)}` };
        }
      }
      o.log("narinfo hits, 16 connections, with a token (Authorization: Bearer)");
      {
        const common = { paths: hits, connections: 16, seconds: o.seconds, expect: "ok" } as const;
        const r = await compareLoad(o, tools.wrk as string, { ...common, origin: a.larderd.url, headers: { authorization: `Bearer ${a.token}` } }, { ...common, origin: base(nginx.cacheUrl) });
        figures.narinfo_hit_ratio_c16_token = { larder: r.larder.rps, reference: r.reference.rps, unit: "req/s", detail: `larder ${latency(r.larder)}; nginx (no token) ${latency(r.reference)}` };
      }

      const larderNarUrl = /^URL: (.+)$/m.exec(await (await fetch(`${a.larderd.url}/${CACHE}/${storeHash(data.medium.path)}.narinfo`)).text())?.[1];
      if (larderNarUrl === undefined) throw new Error("larder's narinfo for the medium path has no URL");
      const nginxNarUrl = await flatNarUrl(flatZstd, data.medium.path);
      for (const c of [1, 16]) {
        o.log(`NAR download (${o.sizes.mediumMiB} MiB NAR, stored zstd), ${c} connection${c > 1 ? "s" : ""}`);
        const common = { connections: c, seconds: o.seconds, expect: "ok" } as const;
        const r = await compareLoad(o, tools.wrk as string, { ...common, origin: a.larderd.url, paths: [`/${CACHE}/${larderNarUrl}`] }, { ...common, origin: base(nginx.cacheUrl), paths: [`/${CACHE}/${nginxNarUrl}`] });
        figures[`nar_ratio_c${c}`] = { larder: r.larder.mibPerSec, reference: r.reference.mibPerSec, unit: "MiB/s", detail: "bytes on the wire (zstd)" };
      }

      o.log("get-missing-paths with 10,000 hashes");
      figures.missing_paths_10k_ms = await missingPaths(a.larderd.url, a.token, data.closure);
    } finally {
      await a.larderd.stop();
    }

    // --- instance B, fresh: memory while ingesting the big NAR, then larder push ---
    const b = await startInstance(o, backend, "larder-b", false);
    try {
      await nx.setToken(b.larderd.url, b.token);
      const before = b.larderd.memory();
      o.log(`ingest: nix copy of the ${o.sizes.bigMiB} MiB NAR, sampling larderd's RSS`);
      const sampler = sampleRss(b.larderd.pid);
      const bigSecs = await nixCopy(nx, `${b.larderd.url}/${CACHE}?compression=zstd`, [data.big.path]);
      const sampled = sampler.stop();
      const after = b.larderd.memory();
      figures.peak_rss_mib_1g = { larder: after.hwmMiB, reference: null, unit: "MiB", detail: `VmHWM; ${before.rssMiB.toFixed(0)} MiB before, ${sampled.toFixed(0)} MiB largest sampled RSS, ${(data.big.narSize / MiB / bigSecs).toFixed(0)} MiB/s` };

      o.log("ingest: larder push of the medium NAR and of the closure");
      const pushMedium = await larderPush(o, nx, b.larderd.url, b.token, [data.medium.path]);
      const pushCpuBefore = cpuSeconds(b.larderd.pid);
      const pushClosure = "seconds" in pushMedium ? await larderPush(o, nx, b.larderd.url, b.token, [data.closureRoot]) : pushMedium;
      const pushCpu = cpuSeconds(b.larderd.pid) - pushCpuBefore;
      figures.ingest_ratio_larder_push =
        "seconds" in pushMedium
          ? { larder: mediumBytes / MiB / pushMedium.seconds, reference: limit.medium1, unit: "MiB/s", detail: `${o.sizes.mediumMiB} MiB NAR vs zstd -1 | sha256sum` }
          : { larder: null, reference: limit.medium1, unit: "MiB/s", reason: pushMedium.reason };
      figures.ingest_ratio_larder_push_zstd3 =
        "seconds" in pushMedium
          ? { larder: mediumBytes / MiB / pushMedium.seconds, reference: limit.medium3, unit: "MiB/s", detail: `${o.sizes.mediumMiB} MiB NAR vs zstd -3 | sha256sum (larder stores zstd at level 3 by default)` }
          : { larder: null, reference: limit.medium3, unit: "MiB/s", reason: pushMedium.reason };
      figures.ingest_ratio_larder_push_closure =
        "seconds" in pushClosure
          ? { larder: closureBytes / MiB / pushClosure.seconds, reference: limit.closure1, unit: "MiB/s", detail: `${data.closure.length}-path closure vs zstd -1 | sha256sum` }
          : { larder: null, reference: limit.closure1, unit: "MiB/s", reason: pushClosure.reason };
      figures.ingest_ratio_larder_push_closure_vs_file =
        "seconds" in pushClosure
          ? { larder: closureBytes / MiB / pushClosure.seconds, reference: closureBytes / MiB / fileClosureSecs, unit: "MiB/s", detail: `${data.closure.length}-path closure: larder push vs nix copy --to file:// (the client alone)` }
          : { larder: null, reference: closureBytes / MiB / fileClosureSecs, unit: "MiB/s", reason: pushClosure.reason };
      figures.push_closure_server_us_per_path =
        "seconds" in pushClosure
          ? { larder: (pushCpu * 1e6) / data.closure.length, reference: null, unit: "µs", detail: `larderd's CPU time during larder push of the ${data.closure.length}-path closure, per path` }
          : { larder: null, reference: null, unit: "µs", reason: pushClosure.reason };
    } finally {
      await b.larderd.stop();
    }

    if (o.largeObjects > 0) {
      await runLarge(
        { work: o.work, objects: o.largeObjects, gc1m: o.gc1m, seconds: o.seconds, wrk: tools.wrk as string, nginx: tools.nginx as string, databaseUrl: () => backend.databaseUrl(), storage: backend.storage("big"), log: o.log },
        figures,
      );
    } else {
      for (const key of ["narinfo_distinct_ratio_c16", "missing_paths_10k_large_ms", "gc_delete_objects_per_s", "gc_1m_seconds"]) {
        figures[key] = { larder: null, reference: null, unit: "", reason: "--large-objects 0" };
      }
    }
  } finally {
    await nginx.stop();
    await backend.stop();
  }
  return {
    figures,
    data: { closurePaths: data.closure.length, closureMiB: closureBytes / MiB, mediumMiB: mediumBytes / MiB, bigMiB: data.big.narSize / MiB, buildSeconds: data.buildSeconds },
  };
}

/** Median of 5 timed calls (after one warm-up) of get-missing-paths with 10,000 hashes. */
async function missingPaths(url: string, token: string, closure: PathInfo[]): Promise<Figure> {
  const hashes = closure.map((p) => storeHash(p.path));
  while (hashes.length < 10_000) hashes.push(randomStoreHash());
  const body = JSON.stringify({ cache: CACHE, store_path_hashes: hashes });
  const call = async (): Promise<number> => {
    const started = process.hrtime.bigint();
    const res = await fetch(`${url}/_api/v1/get-missing-paths`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
    const text = await res.text();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (res.status !== 200) throw Object.assign(new Error(`get-missing-paths answered ${res.status}: ${text.slice(0, 200)}`), { status: res.status });
    const missing = (JSON.parse(text) as { missing_paths: string[] }).missing_paths.length;
    if (missing !== 10_000 - closure.length) throw new Error(`get-missing-paths reported ${missing} missing, expected ${10_000 - closure.length}`);
    return ms;
  };
  try {
    await call();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await call());
    times.sort((x, y) => x - y);
    return { larder: times[2] as number, reference: null, unit: "ms", detail: `median of 5; min ${(times[0] as number).toFixed(1)} ms` };
  } catch (e) {
    if ((e as { status?: number }).status === 404) return { larder: null, reference: null, unit: "ms", reason: "the server has no POST /_api/v1/get-missing-paths yet" };
    throw e;
  }
}
