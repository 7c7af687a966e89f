/**
 * Wires a Config into a running server: database (migrated), storage, token keys, background
 * tasks, HTTP. Used by the entry point and by tests, which start real servers this way.
 */
import { mkdir } from "node:fs/promises";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { createLogger, redacting } from "./log.ts";
import type { Config } from "./config/load.ts";
import type { AppContext } from "./context.ts";
import { openDb } from "./db/connect.ts";
import { openStoragePool } from "./storage/pool.ts";
import { tokenKeys } from "./auth/tokens.ts";
import { createRevocations } from "./auth/revocations.ts";
import { createCacheDirectory } from "./cache-directory.ts";
import { createNarInfoCache } from "./narinfo-cache.ts";
import { createAccessTracker } from "./access-tracker.ts";
import { createMetrics } from "./metrics.ts";
import { buildApp } from "./app.ts";
import { sweepSpool } from "./ingest/spool.ts";
import { createBucketLayout } from "./bucket/layout.ts";

export interface ContextOptions {
  log?: Logger;
  /** Apply pending migrations (every serving mode does; several processes may race safely). */
  migrate?: boolean;
  accessFlushMs?: number;
  defaultMetrics?: boolean;
  /** How long a rendered narinfo answer is kept (narinfo-cache.ts); 0 turns the cache off. */
  narInfoTtlMs?: number;
  /** How often the storage pool rereads usage and draining flags, and how long a failed backend is skipped (storage/pool.ts). */
  storageRefreshMs?: number;
  storageFailureCooldownMs?: number;
}

export async function createContext(config: Config, opts: ContextOptions = {}): Promise<AppContext> {
  const log = opts.log ? redacting(opts.log) : createLogger({ level: config.logLevel, base: { service: "larderd" } });
  const db = await openDb(config.database);
  if (opts.migrate ?? true) await db.migrate();
  await mkdir(config.spoolDir, { recursive: true, mode: 0o700 });
  const swept = await sweepSpool(config.spoolDir, { graceMs: config.gc.graceSeconds * 1000, atStart: true });
  if (swept > 0) log.info({ removed: swept, spoolDir: config.spoolDir }, "removed spool files of uploads that died with their process");
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics ?? false });
  const pool = await openStoragePool(config.storageSetup, {
    db,
    log,
    metrics,
    ...(opts.storageRefreshMs !== undefined && { refreshMs: opts.storageRefreshMs }),
    ...(opts.storageFailureCooldownMs !== undefined && { failureCooldownMs: opts.storageFailureCooldownMs }),
  }).catch(async (e: unknown) => {
    await db.close();
    throw e;
  });
  const narInfos = createNarInfoCache({ ttlMs: opts.narInfoTtlMs ?? config.narInfoCacheTtlMs });
  const bucketLayout = createBucketLayout({ db, pool, layout: config.bucketLayout, log, metrics });
  return {
    config,
    db,
    storage: pool.scratch,
    pool,
    tokens: tokenKeys(config.jwt.key, config.jwt.issuer, config.jwt.audiences),
    revocations: createRevocations(db),
    // A cache's settings and key are in every narinfo it serves.
    caches: createCacheDirectory(db, { onInvalidate: () => narInfos.clear() }),
    narInfos,
    accessTracker: createAccessTracker(db, opts.accessFlushMs ?? config.gc.accessFlushSeconds * 1000, (e) => log.warn({ err: e }, "could not record access times or signatures")),
    metrics,
    ...(bucketLayout && { bucketLayout }),
    log,
    spoolDir: config.spoolDir,
  };
}

export interface RunningServer {
  ctx: AppContext;
  app: FastifyInstance;
  /** Base URL without trailing slash, e.g. http://127.0.0.1:41234 */
  url: string;
  close(): Promise<void>;
}

/** A failed listen, said with what to do: the usual causes each have their own fix. */
function listenError(listen: Config["listen"], e: unknown): Error {
  const where = `${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${listen.port}`;
  const how = `choose another address with --listen HOST:PORT (e.g. --listen 127.0.0.1:8081) or listen = "…" in server.toml`;
  switch ((e as NodeJS.ErrnoException).code) {
    case "EADDRINUSE":
      return new Error(`cannot listen on ${where}: the port is already in use (another larderd or service); ${how}`);
    case "EACCES":
      return new Error(`cannot listen on ${where}: permission denied (ports below 1024 need privileges); ${how}`);
    case "EADDRNOTAVAIL":
      return new Error(`cannot listen on ${where}: that address is not on this machine; ${how}`);
    default:
      return e instanceof Error ? e : new Error(String(e));
  }
}

export interface ServerOptions extends ContextOptions {
  ctx?: AppContext;
  /**
   * Answer plain narinfo reads before the framework (http/fast-reads.ts). Off only to compare
   * the two paths: server/test/fast-reads.test.ts, and bench/reads.ts with the environment
   * variable LARDER_FAST_READS=0 (a switch for measuring, not a setting; not in the config).
   */
  fastReads?: boolean;
}

export async function startServer(config: Config, opts: ServerOptions = {}): Promise<RunningServer> {
  const ctx = opts.ctx ?? (await createContext(config, opts));
  const app = buildApp(ctx, { fastReads: opts.fastReads ?? process.env.LARDER_FAST_READS !== "0" });
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (e) {
    await app.close().catch(() => undefined);
    if (!opts.ctx) {
      await ctx.accessTracker.stop();
      await ctx.db.close();
    }
    throw listenError(config.listen, e);
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.listen.port;
  const host = config.listen.host.includes(":") ? `[${config.listen.host === "::" ? "::1" : config.listen.host}]` : config.listen.host === "0.0.0.0" ? "127.0.0.1" : config.listen.host;
  return {
    ctx,
    app,
    url: `http://${host}:${port}`,
    async close() {
      await app.close();
      await ctx.bucketLayout?.idle();
      await ctx.accessTracker.stop();
      ctx.pool.close();
      await ctx.db.close();
    },
  };
}
