/** Scheduling of garbage collection: periodic inside a server or GC node, or one run and exit. */
import { pino } from "pino";
import { createLogger } from "../log.ts";
import type { AppContext } from "../context.ts";
import type { Config } from "../config/load.ts";
import { openDb } from "../db/connect.ts";
import { openStoragePool } from "../storage/pool.ts";
import { createMetrics } from "../metrics.ts";
import { collectGarbage, type GcDeps } from "./run.ts";
import { sweepSpool } from "../ingest/spool.ts";
import { createBucketLayout } from "../bucket/layout.ts";

/** Spool files of uploads that died with their process (ingest/spool.ts); a failure here never stops GC. */
async function sweepSpoolFor(config: Config, log: GcDeps["log"]): Promise<void> {
  try {
    const removed = await sweepSpool(config.spoolDir, { graceMs: config.gc.graceSeconds * 1000, atStart: false });
    if (removed > 0) log.info({ removed, spoolDir: config.spoolDir }, "gc: removed stale spool files");
  } catch (e) {
    log.warn({ err: e, spoolDir: config.spoolDir }, "gc: could not sweep the spool directory");
  }
}

/** Hits may wait one flush interval in another server's memory, and its write may take as long again. */
export function unflushedAccessMs(config: Config): number {
  return 2 * config.gc.accessFlushSeconds * 1000;
}

export interface GcLoop {
  stop(): Promise<void>;
}

/** Runs GC now and then every `intervalSeconds` (0 disables it), never two runs at once. */
export function startPeriodicGc(deps: GcDeps, intervalSeconds: number, beforeRun?: () => Promise<void>): GcLoop {
  if (intervalSeconds === 0) {
    deps.log.info("gc: periodic garbage collection is disabled (interval 0s)");
    return { async stop() {} };
  }
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    running = (async () => {
      try {
        await beforeRun?.();
        await collectGarbage(deps);
      } catch (e) {
        deps.log.error({ err: e }, "gc: run failed; retrying at the next interval");
      }
    })().finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(tick, intervalSeconds * 1000);
    });
  };
  timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

export function startGcLoop(ctx: AppContext): GcLoop {
  return startPeriodicGc(
    // Each committed batch of deleted objects drops the narinfos this server keeps rendered.
    { db: ctx.db, pool: ctx.pool, gc: ctx.config.gc, buildLogs: ctx.config.buildLogs, log: ctx.log, metrics: ctx.metrics, ...(ctx.bucketLayout && { bucketLayout: ctx.bucketLayout }), checkpoint: (step) => void (step === "objects" && ctx.narInfos.clear()) },
    ctx.config.gc.intervalSeconds,
    async () => {
      // This process's recent hits must count before anything is judged unused. A monolithic
      // server is the only one serving, so once it has flushed its own there is nothing to wait for.
      await ctx.accessTracker.flush();
      await sweepSpoolFor(ctx.config, ctx.log);
    },
  );
}

/** `--mode garbage-collector` (periodic) and `garbage-collector-once` (prints counts, exit code). */
export async function runGcMode(config: Config, once: boolean, untilSignal: () => Promise<void>, checkpoint?: GcDeps["checkpoint"], objectBatch?: number): Promise<number> {
  // A one-shot run's result is its stdout (the counts, for scripts); its log goes to stderr so the
  // two can never interleave.
  const log = createLogger(
    { level: config.logLevel, base: { service: "larderd", mode: once ? "garbage-collector-once" : "garbage-collector" } },
    pino.destination({ dest: once ? 2 : 1, sync: true }),
  );
  const db = await openDb(config.database);
  try {
    await db.migrate();
    const metrics = createMetrics();
    const pool = await openStoragePool(config.storageSetup, { db, log, metrics });
    const bucketLayout = createBucketLayout({ db, pool, layout: config.bucketLayout, log, metrics });
    // Servers elsewhere hold hits in memory for up to one flush interval.
    const deps: GcDeps = { db, pool, gc: config.gc, buildLogs: config.buildLogs, log, metrics, unflushedAccessMs: unflushedAccessMs(config), ...(bucketLayout && { bucketLayout }), ...(checkpoint && { checkpoint }), ...(objectBatch !== undefined && { objectBatch }) };
    if (once) {
      await sweepSpoolFor(config, log);
      const stats = await collectGarbage(deps);
      process.stdout.write(`${JSON.stringify(stats)}\n`);
      return 0;
    }
    const loop = startPeriodicGc(deps, config.gc.intervalSeconds, () => sweepSpoolFor(config, log));
    await untilSignal();
    await loop.stop();
    return 0;
  } finally {
    await db.close();
  }
}
