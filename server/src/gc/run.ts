/**
 * Garbage collection in three levels, as attic, but closure-safe and crash-safe:
 *   1. objects leave a cache when they are past retention, not pinned, and no path left in that
 *      cache refers to them — deleted from the top of dead closures down, one short atomic
 *      statement at a time, so a path is never removed while something kept names it;
 *   2. NARs no cache uses (and no staged upload names), older than the grace period, leave the
 *      `nar` table and enter the storage journal in one transaction;
 *   3. storage objects in the journal are deleted (an already-missing one counts as deleted), as
 *      are uploads that reached storage but never got a row (a crash mid-commit).
 * A kill at any point leaves rows that the next run finishes.
 */
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from "node:timers/promises";
import { sql, type Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { Logger } from "pino";
import type { Config } from "../config/load.ts";
import type { Db } from "../db/connect.ts";
import { lockCache } from "../db/objects.ts";
import { ACCESS_GRANULARITY_MS } from "../db/access.ts";
import type { StoragePool } from "../storage/pool.ts";
import type { Metrics } from "../metrics.ts";
import { collectBuildLogs } from "./logs.ts";
import { collectRealisations } from "./realisations.ts";
import { sweepCachixUploads } from "../cachix/sweep.ts";
import type { BucketLayout } from "../bucket/types.ts";
import { withBulkDeletes } from "./sqlite-bulk.ts";

export interface GcStats {
  objects: number;
  nars: number;
  storage_objects: number;
  bytes_freed: number;
  staged_expired: number;
  build_logs: number;
  realisations: number;
  duration_ms: number;
}

export interface GcDeps {
  db: Db;
  pool: StoragePool;
  gc: Omit<Config["gc"], "accessFlushSeconds">;
  /** Build-log retention; without it logs live exactly as long as their derivation's outputs. */
  buildLogs?: Config["buildLogs"];
  log: Logger;
  metrics?: Metrics;
  /**
   * How long another process may hold hits it has not written yet (twice the access-flush
   * interval). Before judging retention the run waits this long, so a path another server served
   * just before the run started counts as used. In-process callers that flushed their own hits and
   * have no other servers pass nothing.
   */
  unflushedAccessMs?: number;
  /** Public caches' bucket layouts: reconciled after the database steps (what left the caches leaves the bucket, top-down). */
  bucketLayout?: BucketLayout;
  /** Called between steps; tests use it to stop a run at a chosen point. */
  checkpoint?: (step: string) => Promise<void> | void;
  /**
   * Test-only: candidates per object batch (default BATCH). Crash tests make it small so a run
   * can be killed between two committed batches of one closure, in the middle of the object step.
   */
  objectBatch?: number;
}

const BATCH = 1000;
const NAR_BATCH = 2000;
const STORAGE_CONCURRENCY = 8;

async function expireStaged(d: GcDeps, now: number): Promise<number> {
  const r = await d.db.kysely.deleteFrom("staged_nar").where("created_at", "<", now - d.gc.graceSeconds * 1000).executeTakeFirst();
  return Number(r.numDeletedRows);
}

interface Position {
  at: number;
  id: number;
}

const after = (a: Position, b: Position) => a.at > b.at || (a.at === b.at && a.id > b.id);

/**
 * One cache's expired objects, newest access first, from just below `from` (the last batch's
 * end): index range scans that resume where the previous batch stopped. The rest of `from`'s
 * access time, then older times, as two ranges, because neither SQLite nor PostgreSQL bounds an
 * index range by a row-value comparison for certain.
 */
async function expiredBatch(trx: Kysely<Database>, cacheId: number, from: Position, size: number): Promise<Position[]> {
  const { rows: same } = await sql<Position>`
    select last_accessed_at as at, id from object
    where cache_id = ${cacheId} and last_accessed_at = ${from.at} and id < ${from.id}
    order by id desc
    limit ${size}`.execute(trx);
  if (same.length === size) return same;
  const { rows: older } = await sql<Position>`
    select last_accessed_at as at, id from object
    where cache_id = ${cacheId} and last_accessed_at < ${from.at}
    order by last_accessed_at desc, id desc
    limit ${size - same.length}`.execute(trx);
  return [...same, ...older];
}

/**
 * Deletes those of `ids` that are past retention, not pinned (unless the cache is gone), and that
 * no other path left in the cache refers to. One statement sees one state of the references, so
 * it removes the tops of dead closures and never a path something kept still names (reference
 * rows go with their object, by the foreign key's cascade). The unary `+` keeps SQLite from
 * scanning the access-time index instead of looking up the ids.
 */
async function deleteUnreferenced(trx: Kysely<Database>, cacheId: number, ids: readonly number[], cutoff: number, keepPinned: boolean): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    delete from object where id in (${sql.join(ids)})
      and +cache_id = ${cacheId} and +created_at < ${cutoff} and +last_accessed_at < ${cutoff}
      and (${keepPinned ? 1 : 0} = 0 or not exists (
        select 1 from pin p where p.cache_id = object.cache_id and p.store_path_hash = object.store_path_hash))
      and not exists (
        select 1 from object_ref r
        where r.cache_id = object.cache_id and r.ref_hash = object.store_path_hash and r.object_id <> object.id)
    returning id`.execute(trx);
  return rows.map((r) => r.id);
}

/**
 * One batch: deletes what it can of `batch`, level by level. After the first delete only paths
 * a deleted path referred to can have become free, so each further statement names just those.
 * Answers the ids deleted, and whether a deleted path referred to an expired path of an earlier
 * batch (then another pass is needed).
 */
async function collectBatch(trx: Kysely<Database>, cacheId: number, batch: Position[], cutoff: number, keepPinned: boolean): Promise<{ deleted: number; revisit: boolean }> {
  const ids = batch.map((b) => b.id);
  const idByHash = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx.selectFrom("object").select(["id", "store_path_hash"]).where("id", "in", ids.slice(i, i + 500)).execute();
    for (const r of rows) idByHash.set(r.store_path_hash, r.id);
  }
  const refsOf = new Map<number, string[]>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await trx.selectFrom("object_ref").select(["object_id", "ref_hash"]).where("object_id", "in", ids.slice(i, i + 500)).execute();
    for (const r of rows) {
      const list = refsOf.get(r.object_id);
      if (list) list.push(r.ref_hash);
      else refsOf.set(r.object_id, [r.ref_hash]);
    }
  }
  const deleted = new Set<number>();
  const outside = new Set<string>();
  for (let attempt: number[] = ids; attempt.length > 0; ) {
    const gone = await deleteUnreferenced(trx, cacheId, attempt, cutoff, keepPinned);
    const next = new Set<number>();
    for (const id of gone) {
      deleted.add(id);
      for (const h of refsOf.get(id) ?? []) {
        const target = idByHash.get(h);
        if (target === undefined) outside.add(h);
        else if (target !== id) next.add(target);
      }
    }
    attempt = [...next].filter((id) => !deleted.has(id));
  }
  let revisit = false;
  if (outside.size > 0 && batch.length > 0) {
    const first = batch[0] as Position;
    const list = [...outside];
    for (let i = 0; i < list.length && !revisit; i += 500) {
      const rows = await trx
        .selectFrom("object")
        .select(["last_accessed_at as at", "id"])
        .where("cache_id", "=", cacheId)
        .where("store_path_hash", "in", list.slice(i, i + 500))
        .execute();
      // The access-time condition is checked here: in SQL it drew SQLite to the access index.
      revisit = rows.some((r) => r.at < cutoff && after(r, first));
    }
  }
  return { deleted: deleted.size, revisit };
}

/**
 * Walks each cache's expired objects in batches, newest access first (paths are pushed
 * references first, so a referrer usually comes before what it refers to), each batch one short
 * transaction under the cache's GC lock. A path kept only because its referrer was in a later
 * batch is freed by another pass, made only when a batch deleted a path referring to an earlier
 * batch's. Each pass reads the expired objects through the index, resuming where the last batch
 * stopped, so a run costs O(expired), not O(expired × all) as a search from the start per batch.
 */
async function collectObjects(d: GcDeps, now: number): Promise<number> {
  const size = d.objectBatch ?? BATCH;
  let total = 0;
  const caches = await d.db.kysely.selectFrom("cache").select(["id", "name", "retention_period", "deleted_at"]).execute();
  const judgesRetention = caches.some((c) => c.deleted_at === null && (c.retention_period ?? d.gc.defaultRetentionSeconds) > 0);
  if (judgesRetention && (d.unflushedAccessMs ?? 0) > 0) {
    // The cutoffs stay relative to `now`, the run's start: every hit before it is written by the
    // end of this wait, and each delete re-reads last_accessed_at.
    d.log.info(`gc: waiting ${d.unflushedAccessMs} ms for access times other servers have not written yet`);
    await sleep(d.unflushedAccessMs);
  }
  for (const cache of caches) {
    const retention = cache.retention_period ?? d.gc.defaultRetentionSeconds;
    // A destroyed (soft-deleted) cache keeps nothing; retention 0 keeps everything.
    if (cache.deleted_at === null && retention === 0) continue;
    // Access times are written at most once per ACCESS_GRANULARITY_MS, so one can lag that much.
    const cutoff = cache.deleted_at !== null ? Number.MAX_SAFE_INTEGER : now - retention * 1000 - ACCESS_GRANULARITY_MS;
    const keepPinned = cache.deleted_at === null;
    for (let again = true; again; ) {
      again = false;
      let from: Position | undefined = { at: cutoff, id: 0 };
      while (from) {
        const start: Position = from;
        const r = await d.db.kysely.transaction().execute(async (trx) => {
          await lockCache(trx, d.db, cache.id, "exclusive");
          const batch = await expiredBatch(trx, cache.id, start, size);
          return { ...(await collectBatch(trx, cache.id, batch, cutoff, keepPinned)), next: batch.length === size ? batch[size - 1] : undefined };
        });
        from = r.next;
        total += r.deleted;
        again ||= r.revisit;
        if (r.deleted > 0) d.log.debug({ cache: cache.name, deleted: r.deleted }, "gc: objects deleted");
        await d.checkpoint?.("objects");
        // SQLite answers synchronously: without a turn of the event loop between batches, a GC
        // inside the server would hold off every request until it finished.
        await yieldToEventLoop();
      }
    }
  }
  return total;
}

/**
 * Walks the `nar` table once by primary key, a batch at a time: which of the batch's old NARs no
 * object and no staged upload names is asked of the indexes on `object.nar_id` and
 * `staged_nar.nar_id` for those ids only, never as an anti-join over every object.
 */
async function collectNars(d: GcDeps, now: number): Promise<number> {
  const cutoff = now - d.gc.graceSeconds * 1000;
  let total = 0;
  let after = 0;
  for (;;) {
    const rows = await d.db.kysely.selectFrom("nar").select(["id", "created_at"]).where("id", ">", after).orderBy("id").limit(NAR_BATCH).execute();
    if (rows.length === 0) break;
    after = (rows.at(-1) as { id: number }).id;
    const old = rows.filter((r) => r.created_at < cutoff);
    const oldIds = old.map((r) => r.id);
    const used = new Set<number>();
    if (oldIds.length > 0) {
      for (const r of await d.db.kysely.selectFrom("object").select("nar_id").where("nar_id", "in", oldIds).execute()) used.add(r.nar_id);
      for (const r of await d.db.kysely.selectFrom("staged_nar").select("nar_id").where("nar_id", "in", oldIds).execute()) used.add(r.nar_id);
    }
    const candidates = old.filter((r) => !used.has(r.id));
    if (candidates.length > 0) total += await dropNars(d, candidates, cutoff, now);
    await d.checkpoint?.("nars");
    await yieldToEventLoop();
  }
  return total;
}

/** Moves unused NARs from `nar` to the storage journal in one transaction; rows used meanwhile stay. */
async function dropNars(d: GcDeps, candidates: { id: number }[], cutoff: number, now: number): Promise<number> {
  const unused = sql<boolean>`not exists (select 1 from object o where o.nar_id = nar.id)
    and not exists (select 1 from staged_nar s where s.nar_id = nar.id)`;
  return d.db.kysely.transaction().execute(async (trx) => {
    // Journal what the delete actually removed (rows used meanwhile stay, and so do their bytes):
    // a NAR moved to another backend since it was read is journaled where it is now.
    const gone = await trx
      .deleteFrom("nar")
      .where("id", "in", candidates.map((c) => c.id))
      .where("created_at", "<", cutoff)
      .where(unused)
      .returning(["storage_key", "backend", "file_size"])
      .execute();
    if (gone.length > 0) {
      await trx
        .insertInto("storage_journal")
        .values(gone.map((g) => ({ storage_key: g.storage_key, kind: "delete" as const, backend: g.backend, size: g.file_size, created_at: now })))
        .onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete" }))
        .execute();
    }
    return gone.length;
  });
}

async function drainJournal(d: GcDeps, now: number): Promise<{ objects: number; bytes: number }> {
  const uploadCutoff = now - d.gc.graceSeconds * 1000;
  let objects = 0;
  let bytes = 0;
  let after = "";
  for (;;) {
    const rows = await d.db.kysely
      .selectFrom("storage_journal")
      .selectAll()
      .where("storage_key", ">", after)
      .where((eb) =>
        eb.or([
          // A moved NAR's old copy waits until readers pointed at it (presigned URLs, streams) are done.
          eb.and([eb("kind", "=", "delete"), eb.or([eb("delete_after", "is", null), eb("delete_after", "<=", now)])]),
          eb.and([eb("kind", "=", "upload"), eb("created_at", "<", uploadCutoff)]),
        ]),
      )
      .orderBy("storage_key")
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    after = (rows.at(-1) as { storage_key: string }).storage_key;
    await yieldToEventLoop();
    const queue = [...rows];
    // Entries whose bytes are gone (or never were ours to delete): dropped from the journal in
    // one statement per batch. A kill before that only makes the next run delete them again.
    const done: string[] = [];
    const worker = async () => {
      for (let row = queue.shift(); row; row = queue.shift()) {
        const key = row.storage_key;
        if (row.kind === "upload") {
          // An upload whose row exists was committed after all; only its journal entry is stale.
          const owned =
            (await d.db.kysely.selectFrom("nar").select("id").where("storage_key", "=", key).executeTakeFirst()) ??
            (await d.db.kysely.selectFrom("build_log").select("id").where("storage_key", "=", key).executeTakeFirst());
          if (owned) {
            done.push(key);
            continue;
          }
        }
        const storage = d.pool.get(row.backend).storage;
        const head = await storage.head(key);
        await storage.delete(key);
        done.push(key);
        if (head) {
          objects++;
          bytes += head.size;
        }
        await d.checkpoint?.("storage");
      }
    };
    try {
      await Promise.all(Array.from({ length: STORAGE_CONCURRENCY }, worker));
    } finally {
      if (done.length > 0) await d.db.kysely.deleteFrom("storage_journal").where("storage_key", "in", done).execute();
    }
  }
  return { objects, bytes };
}

export async function collectGarbage(d: GcDeps, now = Date.now()): Promise<GcStats> {
  const started = performance.now();
  try {
    const { staged, objects, buildLogs, realisations, nars, storage } = await withBulkDeletes(d.db, async () => {
      const staged = await expireStaged(d, now);
      await sweepCachixUploads({ ...d, storage: d.pool.scratch }, now);
      const objects = await collectObjects(d, now);
      const buildLogs = await collectBuildLogs(d.db, { graceSeconds: d.gc.graceSeconds, retentionSeconds: d.buildLogs?.retentionSeconds ?? 0 }, now);
      await d.checkpoint?.("build-logs");
      const realisations = await collectRealisations(d.db, d.gc.graceSeconds, now);
      if (d.bucketLayout) {
        // The layout holds its own copies of NARs, so its failures never hold up collecting larder's storage.
        await d.bucketLayout.sync().catch((e: unknown) => d.log.error({ err: e }, "gc: bucket layout sync failed; the next run retries"));
        await d.checkpoint?.("bucket-layout");
      }
      const nars = await collectNars(d, now);
      const storage = await drainJournal(d, now);
      return { staged, objects, buildLogs, realisations, nars, storage };
    });
    const stats: GcStats = {
      objects,
      nars,
      storage_objects: storage.objects,
      bytes_freed: storage.bytes,
      staged_expired: staged,
      build_logs: buildLogs,
      realisations,
      duration_ms: Math.round(performance.now() - started),
    };
    d.metrics?.gcRuns.inc({ result: "success" });
    d.metrics?.gcDeleted.inc({ level: "objects" }, objects);
    d.metrics?.gcDeleted.inc({ level: "nars" }, nars);
    d.metrics?.gcDeleted.inc({ level: "storage_objects" }, storage.objects);
    d.metrics?.gcBytesFreed.inc(storage.bytes);
    d.log.info({ gc: stats }, `gc: deleted ${objects} objects, ${nars} NARs, ${storage.objects} storage objects (${storage.bytes} bytes) in ${stats.duration_ms} ms`);
    return stats;
  } catch (e) {
    d.metrics?.gcRuns.inc({ result: "failure" });
    throw e;
  }
}
