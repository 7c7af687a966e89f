/**
 * `larder push`: runtime closure → minus paths signed by one of the cache's upstream keys →
 * one get-missing-paths call → parallel streaming uploads (`nix store dump-path` piped straight
 * into attic's upload-path PUT, no temporary files), references before referrers, each retried
 * with backoff on network errors and 5xx.
 */
import { PassThrough, Readable } from "node:stream";
import zlib from "node:zlib";
import { Api, backoffMs, getCacheConfig, sleep, TransientError, type CacheConfig } from "./api.ts";
import { CliError } from "./errors.ts";
import { dumpNar, localBuildLog, pathInfos, type LocalPathInfo } from "./nix.ts";
import { formatBytes, type Progress } from "./progress.ts";
import { MAX_MISSING_PATHS_HASHES, type GetMissingPathsResponse, type UploadPathResult } from "../api/push-types.ts";

/** attic's client switches to a preamble at this size of upload info (NAR_INFO_PREAMBLE_THRESHOLD). */
export const PREAMBLE_THRESHOLD = 4096;

export interface PushOptions {
  store?: string;
  closure: boolean;
  ignoreUpstreamFilter: boolean;
  jobs: number;
  forcePreamble: boolean;
  /** Also upload the build logs of the pushed paths' derivations that the local store has. */
  logs?: boolean;
  /**
   * Send NARs in zstd at this level (the server's stored level, from its cache config): this
   * process's core compresses while the server only decompresses to check and hash, and stores
   * the bytes as sent. Undefined sends them uncompressed, as attic's client does.
   */
  zstdLevel?: number;
}

export interface PushPlan {
  /** Paths to upload, references before referrers. */
  upload: LocalPathInfo[];
  considered: number;
  alreadyCached: number;
  upstreamSkipped: number;
  upstreamKeysSeen: Set<string>;
  /** Each path left out as signed by an upstream key, with that key's name. */
  upstreamSkippedPaths: { path: string; key: string }[];
}

export interface PushSummary {
  uploaded: number;
  deduplicated: number;
  failed: number;
  bytes: number;
  seconds: number;
  /** Build logs uploaded (with --logs). */
  logs?: number;
}

const baseName = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const pathHash = (p: string) => baseName(p).slice(0, 32);

export function dependencyOrder(paths: LocalPathInfo[]): LocalPathInfo[] {
  const byPath = new Map(paths.map((p) => [p.path, p]));
  const out: LocalPathInfo[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (start: LocalPathInfo) => {
    // Iterative DFS: closures can be deep enough to overflow recursion.
    const stack: [LocalPathInfo, number][] = [[start, 0]];
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [LocalPathInfo, number];
      const [node, i] = top;
      if (i === 0) {
        if (state.has(node.path)) {
          stack.pop();
          continue;
        }
        state.set(node.path, 1);
      }
      const next = node.references[i];
      if (next !== undefined) {
        top[1] = i + 1;
        const dep = byPath.get(next);
        if (dep && !state.has(dep.path)) stack.push([dep, 0]);
        continue;
      }
      stack.pop();
      state.set(node.path, 2);
      out.push(node);
    }
  };
  for (const p of paths) visit(p);
  return out;
}

export async function planPush(api: Api, cache: string, cfg: CacheConfig, infos: LocalPathInfo[], opts: Pick<PushOptions, "ignoreUpstreamFilter">): Promise<PushPlan> {
  const storeDir = cfg.store_dir ?? "/nix/store";
  for (const i of infos) {
    if (i.path.slice(0, i.path.lastIndexOf("/")) !== storeDir) {
      throw new CliError(`${i.path} is not in ${storeDir}, the store directory of cache "${cache}"`);
    }
  }
  const upstream = new Set(opts.ignoreUpstreamFilter ? [] : (cfg.upstream_cache_key_names ?? []));
  const upstreamKeysSeen = new Set<string>();
  const upstreamSkippedPaths: { path: string; key: string }[] = [];
  const candidates = infos.filter((i) => {
    const key = i.signatures.map((s) => s.slice(0, s.indexOf(":"))).find((k) => upstream.has(k));
    if (key !== undefined) {
      upstreamKeysSeen.add(key);
      upstreamSkippedPaths.push({ path: i.path, key });
    }
    return key === undefined;
  });
  const missing = new Set<string>();
  // In batches of the server's per-request limit (one request for any real closure).
  for (let i = 0; i < candidates.length; i += MAX_MISSING_PATHS_HASHES) {
    const res = await api.json<GetMissingPathsResponse>(
      "POST",
      "_api/v1/get-missing-paths",
      { cache, store_path_hashes: candidates.slice(i, i + MAX_MISSING_PATHS_HASHES).map((c) => pathHash(c.path)) },
      `asking cache "${cache}" which paths it lacks`,
    );
    for (const h of res?.missing_paths ?? []) missing.add(h);
  }
  const upload = dependencyOrder(candidates.filter((c) => missing.has(pathHash(c.path))));
  return {
    upload,
    considered: infos.length,
    alreadyCached: candidates.length - upload.length,
    upstreamSkipped: infos.length - candidates.length,
    upstreamKeysSeen,
    upstreamSkippedPaths,
  };
}

/** attic's UploadPathNarInfo for a local path. */
export function uploadInfo(cache: string, i: LocalPathInfo): Record<string, unknown> {
  return {
    cache,
    store_path_hash: pathHash(i.path),
    store_path: i.path,
    references: i.references.map(baseName),
    system: null,
    deriver: i.deriver !== undefined ? baseName(i.deriver) : null,
    sigs: i.signatures,
    ca: i.ca ?? null,
    nar_hash: i.narHash,
    nar_size: i.narSize,
  };
}

async function uploadOne(api: Api, cache: string, info: LocalPathInfo, opts: PushOptions, progress: Progress): Promise<UploadPathResult | undefined> {
  const json = JSON.stringify(uploadInfo(cache, info));
  const preamble = opts.forcePreamble || Buffer.byteLength(json) >= PREAMBLE_THRESHOLD;
  for (let attempt = 0; ; attempt++) {
    const dump = await dumpNar(info.path, opts.store);
    dump.stdout.on("data", (d: Buffer) => progress.bytes(info.path, d.length));
    let nar: Readable = dump.stdout;
    const headers: Record<string, string> = {};
    if (opts.zstdLevel !== undefined) {
      // The NAR's size up front sizes zstd's window and tables to it (a small path's context
      // otherwise costs ten times its compression) and makes a NAR of another size an error here.
      const zstd = zlib.createZstdCompress({ chunkSize: 128 * 1024, pledgedSrcSize: info.narSize, params: { [zlib.constants.ZSTD_c_compressionLevel]: opts.zstdLevel, [zlib.constants.ZSTD_c_checksumFlag]: 0 } });
      dump.stdout.on("error", (e) => zstd.destroy(e));
      nar = dump.stdout.pipe(zstd);
      headers["content-encoding"] = "zstd";
    }
    let body: Readable = nar;
    if (preamble) {
      const pre = Buffer.from(json);
      headers["x-attic-nar-info-preamble-size"] = String(pre.length);
      const joined = new PassThrough({ highWaterMark: 1 << 20 });
      joined.write(pre);
      nar.pipe(joined);
      body = joined;
    } else {
      headers["x-attic-nar-info"] = json;
    }
    let retryReason: string;
    try {
      const res = await api.put("_api/v1/upload-path", headers, body, () => {});
      if (res.status >= 200 && res.status < 300) {
        await dump.done;
        try {
          return JSON.parse(res.text) as UploadPathResult;
        } catch {
          return undefined;
        }
      }
      // The server answered before taking the whole NAR; the rest of the dump is not wanted.
      dump.kill();
      const err = api.refusal(res.status, res.text, "upload");
      if (!(err instanceof TransientError)) throw err;
      retryReason = err.message;
    } catch (e) {
      dump.kill();
      if (e instanceof CliError) throw e;
      if (!api.isNetworkError(e)) throw e;
      if (attempt + 1 >= api.retry.attempts) throw api.unreachable(e);
      retryReason = (e as Error).message;
    }
    if (attempt + 1 >= api.retry.attempts) throw new CliError(`${retryReason} (after ${attempt + 1} attempts)`);
    progress.restart(info.path, attempt + 2, retryReason);
    await sleep(backoffMs(api.retry, attempt));
  }
}

export async function runUploads(api: Api, cache: string, plan: PushPlan, opts: PushOptions, progress: Progress): Promise<PushSummary> {
  const started = Date.now();
  const summary: PushSummary = { uploaded: 0, deduplicated: 0, failed: 0, bytes: 0, seconds: 0 };
  progress.begin(plan.upload.length, plan.upload.reduce((n, p) => n + p.narSize, 0));
  for (const s of plan.upstreamSkippedPaths) progress.skip(s.path, `signed by upstream key ${s.key}`);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const info = plan.upload[next++];
      if (!info) return;
      progress.start(info.path, info.narSize);
      try {
        const r = await uploadOne(api, cache, info, opts, progress);
        if (r?.kind === "Deduplicated") summary.deduplicated++;
        else summary.uploaded++;
        summary.bytes += info.narSize;
        progress.finish(info.path, r?.kind === "Deduplicated" ? "deduplicated" : "uploaded");
      } catch (e) {
        summary.failed++;
        progress.fail(info.path, e instanceof Error ? e.message : String(e));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, plan.upload.length)) }, worker));
  } finally {
    progress.end();
  }
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

export function summaryLine(cache: string, plan: PushPlan, s: PushSummary): string {
  const parts = [`pushed ${s.uploaded + s.deduplicated} of ${plan.considered} paths to "${cache}" (${formatBytes(s.bytes)} in ${s.seconds.toFixed(1)}s${s.deduplicated > 0 ? `, ${s.deduplicated} deduplicated` : ""})`];
  if (plan.alreadyCached > 0) parts.push(`${plan.alreadyCached} already in the cache`);
  if (plan.upstreamSkipped > 0) {
    parts.push(`${plan.upstreamSkipped} skipped as signed by upstream key ${[...plan.upstreamKeysSeen].sort().join(", ")} (--ignore-upstream-cache-filter pushes them)`);
  }
  if (s.logs !== undefined) parts.push(`${s.logs} build log${s.logs === 1 ? "" : "s"} uploaded`);
  if (s.failed > 0) parts.push(`${s.failed} failed`);
  return parts.join("; ");
}

/**
 * Uploads, to the cache's `log/<drv>` (as `nix store copy-log --to` does), the build log of each
 * pushed path's derivation that the local store has; returns how many it uploaded.
 */
export async function pushLogs(target: PushTarget, pushed: LocalPathInfo[], store: string | undefined): Promise<number> {
  const derivers = [...new Set(pushed.flatMap((p) => (p.deriver !== undefined ? [p.deriver] : [])))];
  let uploaded = 0;
  for (const drv of derivers) {
    const log = await localBuildLog(drv, store);
    if (log === undefined) continue;
    const res = await target.api.put(`${target.cache}/log/${baseName(drv)}`, { "content-type": "text/plain; charset=utf-8" }, Readable.from([Buffer.from(log)]), () => {});
    if (res.status < 200 || res.status >= 300) throw target.api.refusal(res.status, res.text, `uploading the build log of ${drv}`);
    uploaded++;
  }
  return uploaded;
}

export interface PushTarget {
  api: Api;
  cache: string;
  cfg: CacheConfig;
}

/** Reads the cache's config and, as attic's client does, moves to its `api_endpoint`. */
export async function pushTarget(api: Api, cache: string): Promise<PushTarget> {
  const cfg = await getCacheConfig(api, cache);
  if (cfg.api_endpoint) api.base = cfg.api_endpoint.endsWith("/") ? cfg.api_endpoint : `${cfg.api_endpoint}/`;
  return { api, cache, cfg };
}

export async function push(target: PushTarget, roots: string[], opts: PushOptions, progress: Progress): Promise<{ plan: PushPlan; summary: PushSummary }> {
  const storeDir = target.cfg.store_dir ?? "/nix/store";
  const outside = roots.find((r) => !r.startsWith(`${storeDir}/`));
  if (outside !== undefined) throw new CliError(`${outside} is not in the Nix store (${storeDir}); give a store path or a link to one such as ./result`);
  const infos = await pathInfos(roots, { ...(opts.store !== undefined && { store: opts.store }), closure: opts.closure });
  const plan = await planPush(target.api, target.cache, target.cfg, infos, opts);
  const summary = await runUploads(target.api, target.cache, plan, opts, progress);
  if (opts.logs) summary.logs = await pushLogs(target, plan.upload, opts.store);
  return { plan, summary };
}
