/**
 * larder, the client: attic's commands and flags (login, use, cache create|configure|info|destroy,
 * push, watch-store) plus what attic lacks (delete, token revoke, --store). The only place that
 * reads argv and the environment and sets the exit status. Errors are one line, no stack trace.
 */
import { createInterface } from "node:readline/promises";
import { LARDER } from "../util/invocation.ts";
import { Command, Option } from "commander";
import { Api, getCacheConfig, type CacheConfig } from "./api.ts";
import { checkServerName, loadClientConfig, normalizeEndpoint, parseCacheRef, resolveServer, saveClientConfig, type Env } from "./config.ts";
import { CliError, fail } from "./errors.ts";
import { resolveArg } from "./nix.ts";
import { BarProgress, LineProgress, type Progress } from "./progress.ts";
import { push, pushTarget, summaryLine, type PushOptions } from "./push.ts";
import { useCache } from "./use.ts";
import { watchStore } from "./watch-store.ts";
import { registerAgent } from "./agent/command.ts";
import { humanDuration, parseDuration } from "../util/duration.ts";
import type { DeletePathResult } from "../api/push-types.ts";
import { registerDeployCommands } from "./deploy-commands.ts";

const env: Env = { ...process.env };
const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`${line}\n`);
const collect = (value: string, previous: string[] = []) => [...previous, value];

async function apiFor(ref: string): Promise<{ api: Api; cache: string }> {
  const { server, cache } = parseCacheRef(ref);
  const s = await resolveServer(await loadClientConfig(env), server);
  const api = new Api(s);
  api.context = `cache "${cache}"`;
  return { api, cache };
}

function intOption(name: string, min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min) throw new CliError(`${name} must be a whole number ≥ ${min} (got "${v}")`);
    return n;
  };
}

/** attic's priority: any 32-bit signed integer (lower is preferred; Nix's own default is 50). */
function priorityOption(v: string): number {
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || n < -(2 ** 31) || n > 2 ** 31 - 1) throw new CliError(`--priority must be a whole number (32-bit, may be negative; got "${v}")`);
  return n;
}

function progress(): Progress {
  return process.stderr.isTTY ? new BarProgress(process.stderr) : new LineProgress(process.stderr);
}

async function readStdinPaths(): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    const t = line.trim();
    if (t) lines.push(t);
  }
  return lines;
}

const program = new Command("larder")
  .description("larder: push to and use larder (and attic) Nix binary caches")
  .configureOutput({ outputError: (s, write) => write(s.replace(/^error: /, "larder: ")) });

program
  .command("login <name> <url> [token]")
  .description("add or update a server (the first one becomes the default)")
  .option("--set-default", "make it the default server")
  .option("--token-file <path>", "read the token from this file on every use instead of storing it")
  .action(async (name: string, url: string, token: string | undefined, o: { setDefault?: boolean; tokenFile?: string }) => {
    checkServerName(name);
    const endpoint = normalizeEndpoint(url);
    const cfg = await loadClientConfig(env);
    const existed = cfg.servers.has(name);
    cfg.servers.set(name, { endpoint, ...(token !== undefined && { token }), ...(o.tokenFile !== undefined && { tokenFile: o.tokenFile }) });
    if (o.setDefault || cfg.defaultServer === undefined || !cfg.servers.has(cfg.defaultServer)) cfg.defaultServer = name;
    const file = await saveClientConfig(env, cfg);
    out(`${existed ? "updated" : "added"} server "${name}" (${endpoint})${cfg.defaultServer === name ? ", the default" : ""}; config in ${file}`);
  });

program
  .command("use <cache>")
  .description("make Nix substitute from CACHE: nix.conf substituter and key, netrc token")
  .option("--bucket", "substitute from the cache's layout in the bucket (its CDN) instead of larderd: reads keep working with the server down")
  .action(async (ref: string, o: { bucket?: boolean }) => {
    const { api, cache } = await apiFor(ref);
    const cfg = await getCacheConfig(api, cache);
    if (!cfg.substituter_endpoint || !cfg.public_key) fail(`server "${api.server.name}" did not say where cache "${cache}" is served or its public key`);
    let endpoint = cfg.substituter_endpoint;
    if (o.bucket) {
      if (!cfg.bucket_layout) fail(`cache "${cache}" has no bucket layout; enable it with ${LARDER} cache configure ${ref} --bucket-layout (public caches only)`);
      if (!cfg.bucket_endpoint) fail(`server "${api.server.name}" does not say where its bucket layouts are read (bucket-layout.public-url in its server.toml)`);
      endpoint = cfg.bucket_endpoint;
    }
    // A bucket layout is public: no token goes with it.
    const r = await useCache(env, endpoint, cfg.public_key, cfg.is_public || o.bucket ? undefined : api.server.token);
    out(
      r.changed
        ? `configured Nix to substitute from ${endpoint} (${r.nixConf}${r.netrc ? `, token in ${r.netrc}` : ""})`
        : `Nix already substitutes from ${endpoint}; nothing changed`,
    );
    if (cfg.nix_push_endpoint) out(`to push with Nix itself: nix copy --to ${cfg.nix_push_endpoint} PATH (not the substituter URL)`);
  });

const cacheCmd = program.command("cache").description("create, configure, inspect and destroy caches");

cacheCmd
  .command("create <cache>")
  .description("create a cache with a new signing key")
  .option("--public", "anyone may pull without a token", false)
  .option("--priority <n>", "substituter priority (lower is preferred)", priorityOption, 41)
  .option("--upstream-cache-key-name <name>", 'paths signed by this key are not pushed (repeatable; default "cache.nixos.org-1")', collect)
  .option("--store-dir <dir>", "the store directory of the paths it holds", "/nix/store")
  .option("--bucket-layout", "also keep a Nix binary-cache layout of it in the server's S3 bucket, readable without the server (with --public)", false)
  .action(async (ref: string, o: { public: boolean; priority: number; upstreamCacheKeyName?: string[]; storeDir: string; bucketLayout: boolean }) => {
    const { api, cache } = await apiFor(ref);
    await api.json("POST", `_api/v1/cache-config/${cache}`, {
      keypair: "Generate",
      is_public: o.public,
      store_dir: o.storeDir,
      priority: o.priority,
      upstream_cache_key_names: (o.upstreamCacheKeyName ?? ["cache.nixos.org-1"]).filter(Boolean),
      ...(o.bucketLayout && { bucket_layout: true }),
    }, `creating cache "${cache}"`);
    const cfg = await getCacheConfig(api, cache);
    out(`created cache "${cache}" (${o.public ? "public" : "private"}); its public key: ${cfg.public_key ?? "?"}`);
  });

cacheCmd
  .command("configure <cache>")
  .description("change a cache's settings")
  .option("--regenerate-keypair", "make a new signing key (clients must trust the new key)")
  .option("--public", "anyone may pull without a token")
  .option("--private", "only tokens with pull rights may pull")
  .option("--priority <n>", "substituter priority", priorityOption)
  .option("--upstream-cache-key-name <name>", "replace the upstream key names (repeatable; '' for none)", collect)
  .option("--store-dir <dir>", "the store directory")
  .option("--retention-period <duration>", 'keep paths this long, e.g. "30 days" ("0s": forever)')
  .option("--reset-retention-period", "follow the server's default retention again")
  .option("--bucket-layout", "keep a Nix binary-cache layout of this public cache in the server's S3 bucket")
  .option("--no-bucket-layout", "remove the cache's layout from the bucket")
  .action(async (ref: string, o: { regenerateKeypair?: boolean; public?: boolean; private?: boolean; priority?: number; upstreamCacheKeyName?: string[]; storeDir?: string; retentionPeriod?: string; resetRetentionPeriod?: boolean; bucketLayout?: boolean }) => {
    if (o.public && o.private) fail("give --public or --private, not both");
    if (o.retentionPeriod !== undefined && o.resetRetentionPeriod) fail("give --retention-period or --reset-retention-period, not both");
    const patch: Record<string, unknown> = {};
    if (o.regenerateKeypair) patch.keypair = "Generate";
    if (o.public) patch.is_public = true;
    if (o.private) patch.is_public = false;
    if (o.priority !== undefined) patch.priority = o.priority;
    if (o.upstreamCacheKeyName !== undefined) patch.upstream_cache_key_names = o.upstreamCacheKeyName.filter(Boolean);
    if (o.storeDir !== undefined) patch.store_dir = o.storeDir;
    if (o.retentionPeriod !== undefined) {
      try {
        patch.retention_period = { Period: parseDuration(o.retentionPeriod) };
      } catch (e) {
        fail(`--retention-period: ${(e as Error).message}`);
      }
    }
    // Unlike attic's client, retention is sent only when asked for, so configuring needs no `cq` right.
    if (o.resetRetentionPeriod) patch.retention_period = "Global";
    if (o.bucketLayout !== undefined) patch.bucket_layout = o.bucketLayout;
    if (Object.keys(patch).length === 0) fail(`nothing to change; see ${LARDER} cache configure --help`);
    const { api, cache } = await apiFor(ref);
    await api.json("PATCH", `_api/v1/cache-config/${cache}`, patch, `configuring cache "${cache}"`);
    out(`configured cache "${cache}"`);
  });

function describeRetention(r: CacheConfig["retention_period"]): string {
  if (r === undefined || r === "Global") return "Global Default";
  return r.Period === 0 ? "Forever (0s)" : humanDuration(r.Period);
}

cacheCmd
  .command("info <cache>")
  .description("show a cache's settings")
  .action(async (ref: string) => {
    const { api, cache } = await apiFor(ref);
    const c = await getCacheConfig(api, cache);
    const rows: [string, string][] = [
      ["Public", String(c.is_public ?? false)],
      ["Public Key", c.public_key ?? ""],
      ["Binary Cache Endpoint", c.substituter_endpoint ?? ""],
      ["API Endpoint", c.api_endpoint ?? ""],
      ...(c.nix_push_endpoint ? ([["Nix Push Endpoint", c.nix_push_endpoint]] as [string, string][]) : []),
      ["Store Directory", c.store_dir ?? ""],
      ["Priority", String(c.priority ?? "")],
      ["Upstream Cache Keys", JSON.stringify(c.upstream_cache_key_names ?? [])],
      ["Retention Period", describeRetention(c.retention_period)],
      ["Bucket Layout", c.bucket_layout ? (c.bucket_endpoint ?? "yes") : "no"],
    ];
    for (const [k, v] of rows) out(`${k.padStart(21)}: ${v}`);
  });

cacheCmd
  .command("destroy <cache>")
  .description("destroy a cache and everything in it")
  .option("--no-confirm", "do not ask")
  .action(async (ref: string, o: { confirm: boolean }) => {
    const { api, cache } = await apiFor(ref);
    if (o.confirm) {
      if (!process.stdin.isTTY) fail(`refusing to destroy cache "${cache}" without confirmation; run it on a terminal or pass --no-confirm`);
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      const answer = await rl.question(`Destroy cache "${cache}" on server "${api.server.name}" and everything in it? Type its name to confirm: `);
      rl.close();
      if (answer.trim() !== cache) fail("not confirmed; nothing was destroyed");
    }
    await api.json("DELETE", `_api/v1/cache-config/${cache}`, undefined, `destroying cache "${cache}"`);
    out(`destroyed cache "${cache}"`);
  });

interface PushFlags {
  stdin?: boolean;
  closure: boolean;
  ignoreUpstreamCacheFilter?: boolean;
  jobs: number;
  forcePreamble?: boolean;
  store?: string;
  logs?: boolean;
  compress: boolean;
}

function pushOptions(o: PushFlags, cfg: CacheConfig): PushOptions {
  const level = cfg.upload_zstd_level;
  return {
    ...(o.compress && Number.isInteger(level) && (level as number) >= 1 && (level as number) <= 19 && { zstdLevel: level as number }),
    ...(o.store !== undefined && { store: o.store }),
    closure: o.closure,
    ignoreUpstreamFilter: o.ignoreUpstreamCacheFilter === true,
    jobs: o.jobs,
    forcePreamble: o.forcePreamble === true,
    logs: o.logs === true,
  };
}

function pushFlags(cmd: Command): Command {
  return cmd
    .option("--ignore-upstream-cache-filter", "also push paths signed by the cache's upstream keys")
    .option("-j, --jobs <n>", "parallel uploads", intOption("--jobs", 1), 12)
    .option("--store <url>", "the Nix store to push from (e.g. a chroot store path)")
    .option("--logs", "also upload the build logs of the pushed paths' derivations, where the local store has them")
    .addOption(new Option("--no-closure", "push only the paths given, not what they reference"))
    .addOption(new Option("--force-preamble", "send upload info as a body preamble, never as a header").hideHelp())
    .addOption(new Option("--no-compress", "send NARs uncompressed even where the server takes zstd").hideHelp());
}

pushFlags(
  program
    .command("push <cache> [paths...]")
    .description("push store paths and their runtime closures")
    .option("--stdin", "also read paths from standard input, one per line"),
).action(async (ref: string, paths: string[], o: PushFlags) => {
  const { api, cache } = await apiFor(ref);
  const roots = [...paths, ...(o.stdin ? await readStdinPaths() : [])];
  if (roots.length === 0) fail("no paths to push; give store paths (or ./result links) or --stdin");
  const target = await pushTarget(api, cache);
  const resolved = await Promise.all(roots.map((r) => resolveArg(r, target.cfg.store_dir)));
  const { plan, summary } = await push(target, resolved, pushOptions(o, target.cfg), progress());
  out(summaryLine(cache, plan, summary));
  if (summary.failed > 0) fail(`${summary.failed} of ${plan.upload.length} paths failed to push (see above)`);
});

pushFlags(program.command("watch-store <cache>").description("push new store paths as they appear, until interrupted")).action(async (ref: string, o: PushFlags) => {
  const { api, cache } = await apiFor(ref);
  const target = await pushTarget(api, cache);
  const w = watchStore(target, pushOptions(o, target.cfg), progress, out);
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => w.stop());
  await w.stopped;
});

program
  .command("delete <cache> <paths...>")
  .description("delete store paths from a cache (refused while other paths there reference them)")
  .option("--force", "delete even if other paths in the cache reference it")
  .action(async (ref: string, paths: string[], o: { force?: boolean }) => {
    const { api, cache } = await apiFor(ref);
    for (const p of paths) {
      const full = await resolveArg(p);
      const base = full.slice(full.lastIndexOf("/") + 1);
      const hash = base.slice(0, 32);
      if (!/^[0-9a-df-np-sv-z]{32}$/.test(hash)) fail(`"${p}" is not a store path (/nix/store/<hash>-<name>) or a link to one`);
      // The whole base name, so the server refuses a name that is not the stored path's.
      const r = await api.json<DeletePathResult>("DELETE", `_api/v1/cache/${cache}/path/${encodeURIComponent(base)}${o.force ? "?force=true" : ""}`, undefined, `deleting ${p} from cache "${cache}"`);
      out(`deleted ${r?.deleted ?? p} from "${cache}"`);
    }
  });

program
  .command("pin <cache> <name> <path>")
  .description("keep PATH and its closure in the cache whatever the retention; moves NAME if it exists")
  .action(async (ref: string, name: string, path: string) => {
    const { api, cache } = await apiFor(ref);
    const full = await resolveArg(path);
    await api.json("PUT", `_api/v1/pins/${cache}/${encodeURIComponent(name)}`, { store_path: full }, `pinning ${full} in cache "${cache}"`);
    out(`pinned ${full} as "${name}" in "${cache}"`);
  });

program
  .command("unpin <cache> <name>")
  .description("remove a pin; its closure then follows the cache's retention")
  .action(async (ref: string, name: string) => {
    const { api, cache } = await apiFor(ref);
    await api.json("DELETE", `_api/v1/pins/${cache}/${encodeURIComponent(name)}`, undefined, `removing pin "${name}" from cache "${cache}"`);
    out(`removed pin "${name}" from "${cache}"`);
  });

program
  .command("pins <cache>")
  .description("list a cache's pins")
  .action(async (ref: string) => {
    const { api, cache } = await apiFor(ref);
    const r = await api.json<{ pins: { name: string; store_path: string | null; pinned_at: string }[] }>("GET", `_api/v1/pins/${cache}`, undefined, `listing the pins of cache "${cache}"`);
    const pins = r?.pins ?? [];
    if (pins.length === 0) out(`no pins in "${cache}"`);
    for (const p of pins) out(`${p.name}\t${p.store_path ?? "(path no longer in the cache)"}\t${p.pinned_at}`);
  });

registerAgent(program, env, note);

const tokenCmd = program.command("token").description("manage the token of a configured server");
tokenCmd
  .command("revoke")
  .description("revoke the token this client uses (it stops working everywhere at once)")
  .option("--server <name>", "which configured server (default: the default server)")
  .option("--all", "revoke every token of this token's subject issued up to now")
  .action(async (o: { server?: string; all?: boolean }) => {
    const cfg = await loadClientConfig(env);
    if (o.server !== undefined) checkServerName(o.server);
    const s = await resolveServer(cfg, o.server);
    if (!s.token) fail(`server "${s.name}" has no token to revoke`);
    const api = new Api(s);
    const r = await api.json<{ sub: string; jti?: string }>("POST", "_api/v1/revoke-token", { scope: o.all ? "subject" : "token" }, "revoking the token");
    const entry = cfg.servers.get(s.name);
    if (entry?.token !== undefined) {
      delete entry.token;
      await saveClientConfig(env, cfg);
    }
    out(`revoked ${o.all ? `every token of subject "${r?.sub}" issued up to now` : `token ${r?.jti ?? ""}`.trim()} on server "${s.name}"; log in with a new token: ${LARDER} login ${s.name} ${s.endpoint} TOKEN`);
  });

registerDeployCommands(program, { apiFor, out });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const message = e instanceof CliError ? e.message : `unexpected error: ${e instanceof Error ? e.message : String(e)}`;
  process.stderr.write(`larder: ${message}\n`);
  if (!(e instanceof CliError) && env.LARDER_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
}
