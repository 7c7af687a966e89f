/**
 * Public caches readable straight from the bucket: for each public cache with `bucket_layout`,
 * larder keeps a standard Nix binary-cache layout under `<bucket-layout.prefix>/<cache>/` that
 * Nix (or a CDN in front of the bucket) reads with larderd down.
 *
 * Writes follow pushes: when a path, log or realisation becomes visible through larderd, it is
 * queued here and written in the background, so a slow or failing bucket never fails or slows a
 * push (a failure is logged and counted, and the next sync catches up). sync() reconciles a
 * cache's layout with the database: stale entries out, top-down (bucket/remove.ts); missing or
 * re-signed ones in, bottom-up (bucket/publish.ts). It runs with every GC run and from
 * `larderd bucket-layout sync`.
 */
import type { Logger } from "pino";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { sql } from "kysely";
import type { Config } from "../config/load.ts";
import type { Db } from "../db/connect.ts";
import type { CacheRow } from "../db/caches.ts";
import type { Metrics } from "../metrics.ts";
import type { StoragePool } from "../storage/pool.ts";
import { createLayoutTarget, type LayoutTarget } from "./target.ts";
import { createRuntime, type LayoutCheckpoint, type LayoutRuntime } from "./runtime.ts";
import { currentCache, publishInfo, publishLog, publishPath, publishRealisation } from "./publish.ts";
import { cachesWithEntries, removeStale } from "./remove.ts";
import type { BucketLayout, SyncStats } from "./types.ts";

export type { BucketLayout, SyncStats };

export interface LayoutDeps {
  db: Db;
  pool: StoragePool;
  layout: Config["bucketLayout"];
  log: Logger;
  metrics?: Metrics;
  target?: LayoutTarget;
  checkpoint?: LayoutCheckpoint;
}

const CONCURRENCY = 4;
/** Queued writes kept in memory; beyond this (a bucket far slower than pushes) they are left to the next sync. */
const MAX_QUEUED = 10_000;
const PAGE = 1000;

/** Server-level switch: without a bucket there is no layout, and caches cannot ask for one. */
export function createBucketLayout(d: LayoutDeps): BucketLayout | undefined {
  if (d.layout.target === undefined) return undefined;
  const rt = createRuntime(d.db, d.pool, d.layout, d.target ?? createLayoutTarget(d.layout.target), d.checkpoint);
  const queue: (() => Promise<void>)[] = [];
  let active = 0;
  let waiters: (() => void)[] = [];

  const failed = (what: string, e: unknown) => {
    d.metrics?.bucketLayoutFailures.inc({ op: what });
    d.log.warn({ err: e }, `bucket layout: could not write ${what}; the next sync retries`);
  };
  const pump = () => {
    while (active < CONCURRENCY && queue.length > 0) {
      const job = queue.shift() as () => Promise<void>;
      active++;
      void job().finally(() => {
        active--;
        if (active === 0 && queue.length === 0) {
          const w = waiters;
          waiters = [];
          for (const f of w) f();
        }
        pump();
      });
    }
  };
  const enqueue = (what: string, job: () => Promise<boolean>) => {
    if (queue.length >= MAX_QUEUED) {
      d.metrics?.bucketLayoutDeferred.inc({ op: what });
      return;
    }
    queue.push(async () => {
      try {
        if (!(await job())) d.metrics?.bucketLayoutDeferred.inc({ op: what });
      } catch (e) {
        failed(what, e);
      }
    });
    pump();
  };
  const visible = (cache: CacheRow, what: string, publish: (prefix: string) => Promise<boolean>) => {
    const prefix = rt.prefixOf(cache);
    if (prefix !== undefined) enqueue(what, () => publish(prefix));
  };

  async function syncCache(cacheId: number, stats: SyncStats): Promise<void> {
    stats.caches++;
    stats.removed += await removeStale(rt, cacheId);
    const cache = await currentCache(d.db, cacheId);
    const prefix = rt.prefixOf(cache);
    if (!cache || prefix === undefined) return;
    const count = (ok: boolean) => void (ok ? stats.published++ : stats.pending++);
    count(await guarded("info", () => publishInfo(rt, cache, prefix, true)));
    // Paths in push order (references are pushed first), so most find their references done.
    const missing = sql<boolean>`not exists (select 1 from bucket_entry e where e.cache_id = ${cache.id} and e.kind = ${"path"}
      and e.name = object.store_path_hash and e.state = ${"published"} and e.prefix = ${prefix} and e.key_version = ${cache.key_version})`;
    for (let after = 0; ; ) {
      const rows = await d.db.kysely.selectFrom("object").select(["id", "store_path_hash"]).where("cache_id", "=", cache.id).where("id", ">", after).where(missing).orderBy("id").limit(PAGE).execute();
      if (rows.length === 0) break;
      after = (rows.at(-1) as { id: number }).id;
      await inParallel(rows, async (r) => count(await guarded("path", () => rt.once(`path:${cache.id}:${r.store_path_hash}`, () => publishPath(rt, cache, prefix, r.store_path_hash)))));
    }
    const logs = await d.db.kysely
      .selectFrom("build_log")
      .select("drv_name")
      .where("cache_id", "=", cache.id)
      .where(sql<boolean>`not exists (select 1 from bucket_entry e where e.cache_id = build_log.cache_id and e.kind = ${"log"} and e.name = build_log.drv_name
        and e.state = ${"published"} and e.prefix = ${prefix} and e.updated_at >= build_log.created_at)`)
      .execute();
    await inParallel(logs, async (l) => count(await guarded("log", () => publishLog(rt, cache, prefix, l.drv_name))));
    const realisations = await d.db.kysely
      .selectFrom("realisation")
      .select("drv_output")
      .where("cache_id", "=", cache.id)
      .where(sql<boolean>`not exists (select 1 from bucket_entry e where e.cache_id = realisation.cache_id and e.kind = ${"realisation"} and e.name = realisation.drv_output
        and e.state = ${"published"} and e.prefix = ${prefix} and e.key_version = ${cache.key_version})`)
      .execute();
    await inParallel(realisations, async (r) => count(await guarded("realisation", () => rt.once(`realisation:${cache.id}:${r.drv_output}`, () => publishRealisation(rt, cache, prefix, r.drv_output)))));
  }

  // A sync keeps going past one entry's bucket error (counted as pending) rather than stopping the whole cache.
  const guarded = async (what: string, fn: () => Promise<boolean>): Promise<boolean> => {
    try {
      return await fn();
    } catch (e) {
      failed(what, e);
      return false;
    }
  };

  return {
    pathVisible: (cache, hash) => visible(cache, "path", (prefix) => rt.once(`path:${cache.id}:${hash}`, () => publishPath(rt, cache, prefix, hash))),
    logVisible: (cache, drv) => visible(cache, "log", (prefix) => publishLog(rt, cache, prefix, drv)),
    realisationVisible: (cache, id) => visible(cache, "realisation", (prefix) => rt.once(`realisation:${cache.id}:${id}`, () => publishRealisation(rt, cache, prefix, id))),
    cacheChanged(cacheId) {
      enqueue("sync", async () => {
        const stats: SyncStats = { caches: 0, removed: 0, published: 0, pending: 0 };
        await syncCache(cacheId, stats);
        return stats.pending === 0;
      });
    },
    async sync(cacheId) {
      const stats: SyncStats = { caches: 0, removed: 0, published: 0, pending: 0 };
      let ids: number[];
      if (cacheId !== undefined) ids = [cacheId];
      else {
        const enabled = await d.db.kysely.selectFrom("cache").select("id").where("bucket_layout", "=", 1).execute();
        ids = [...new Set([...enabled.map((c) => c.id), ...(await cachesWithEntries(d.db))])];
      }
      for (const id of ids) {
        await syncCache(id, stats);
        await yieldToEventLoop();
      }
      if (stats.removed + stats.published + stats.pending > 0) d.log.info({ bucketLayout: stats }, `bucket layout: ${stats.published} written, ${stats.removed} removed, ${stats.pending} pending`);
      return stats;
    },
    idle() {
      if (active === 0 && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

async function inParallel<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
}

export type { LayoutRuntime };
