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
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { sql } from "kysely";
import type { Logger } from "pino";
import type { Config } from "../config/load.ts";
import type { Db } from "../db/connect.ts";
import { lockCache } from "../db/objects.ts";
import type { Storage } from "../storage/types.ts";
import type { Metrics } from "../metrics.ts";
import { collectBuildLogs } from "./logs.ts";

export interface GcStats {
  objects: number;
  nars: number;
  storage_objects: number;
  bytes_freed: number;
  staged_expired: number;
  build_logs: number;
  duration_ms: number;
}

export interface GcDeps {
  db: Db;
  storage: Storage;
  gc: Config["gc"];
  /** Build-log retention; without it logs live exactly as long as their derivation's outputs. */
  buildLogs?: Config["buildLogs"];
  log: Logger;
  metrics?: Metrics;
  /** Called between steps; tests use it to stop a run at a chosen point. */
  checkpoint?: (step: string) => Promise<void> | void;
}

const BATCH = 500;
const STORAGE_CONCURRENCY = 8;

async function expireStaged(d: GcDeps, now: number): Promise<number> {
  const r = await d.db.kysely.deleteFrom("staged_nar").where("created_at", "<", now - d.gc.graceSeconds * 1000).executeTakeFirst();
  return Number(r.numDeletedRows);
}

async function collectObjects(d: GcDeps, now: number): Promise<number> {
  let total = 0;
  const caches = await d.db.kysely.selectFrom("cache").select(["id", "name", "retention_period", "deleted_at"]).execute();
  for (const cache of caches) {
    const retention = cache.retention_period ?? d.gc.defaultRetentionSeconds;
    // A destroyed (soft-deleted) cache keeps nothing; retention 0 keeps everything.
    if (cache.deleted_at === null && retention === 0) continue;
    const cutoff = cache.deleted_at !== null ? Number.MAX_SAFE_INTEGER : now - retention * 1000;
    const keepPinned = cache.deleted_at === null;
    for (;;) {
      const deleted = await d.db.kysely.transaction().execute(async (trx) => {
        await lockCache(trx, d.db, cache.id, "exclusive");
        const { numAffectedRows } = await sql`
          delete from object where id in (
            select o.id from object o
            where o.cache_id = ${cache.id}
              and o.created_at < ${cutoff} and o.last_accessed_at < ${cutoff}
              and (${keepPinned ? 1 : 0} = 0 or not exists (
                select 1 from pin p where p.cache_id = o.cache_id and p.store_path_hash = o.store_path_hash))
              and not exists (
                select 1 from object_ref r join object o2 on o2.id = r.object_id
                where r.cache_id = o.cache_id and r.ref_hash = o.store_path_hash and o2.id <> o.id)
            limit ${BATCH})`.execute(trx);
        return Number(numAffectedRows ?? 0);
      });
      total += deleted;
      if (deleted > 0) d.log.debug({ cache: cache.name, deleted }, "gc: objects deleted");
      await d.checkpoint?.("objects");
      // SQLite answers synchronously: without a turn of the event loop between batches, a GC
      // inside the server would hold off every request until it finished.
      await yieldToEventLoop();
      if (deleted === 0) break;
    }
  }
  return total;
}

async function collectNars(d: GcDeps, now: number): Promise<number> {
  const cutoff = now - d.gc.graceSeconds * 1000;
  let total = 0;
  for (;;) {
    const unused = sql<boolean>`not exists (select 1 from object o where o.nar_id = nar.id)
      and not exists (select 1 from staged_nar s where s.nar_id = nar.id)`;
    const candidates = await d.db.kysely
      .selectFrom("nar")
      .select(["id", "storage_key"])
      .where("created_at", "<", cutoff)
      .where(unused)
      .limit(BATCH)
      .execute();
    if (candidates.length === 0) break;
    const deleted = await d.db.kysely.transaction().execute(async (trx) => {
      await trx
        .insertInto("storage_journal")
        .values(candidates.map((c) => ({ storage_key: c.storage_key, kind: "delete" as const, created_at: now })))
        .onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete" }))
        .execute();
      const gone = await trx
        .deleteFrom("nar")
        .where("id", "in", candidates.map((c) => c.id))
        .where("created_at", "<", cutoff)
        .where(unused)
        .returning("storage_key")
        .execute();
      // Rows that became used meanwhile stay, and so do their bytes.
      const goneKeys = new Set(gone.map((g) => g.storage_key));
      const kept = candidates.filter((c) => !goneKeys.has(c.storage_key)).map((c) => c.storage_key);
      if (kept.length > 0) await trx.deleteFrom("storage_journal").where("storage_key", "in", kept).execute();
      return gone.length;
    });
    total += deleted;
    await d.checkpoint?.("nars");
    await yieldToEventLoop();
    if (deleted === 0) break;
  }
  return total;
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
      .where((eb) => eb.or([eb("kind", "=", "delete"), eb.and([eb("kind", "=", "upload"), eb("created_at", "<", uploadCutoff)])]))
      .orderBy("storage_key")
      .limit(BATCH)
      .execute();
    if (rows.length === 0) break;
    after = (rows.at(-1) as { storage_key: string }).storage_key;
    await yieldToEventLoop();
    const queue = [...rows];
    const worker = async () => {
      for (let row = queue.shift(); row; row = queue.shift()) {
        const key = row.storage_key;
        if (row.kind === "upload") {
          // An upload whose row exists was committed after all; only its journal entry is stale.
          const owned =
            (await d.db.kysely.selectFrom("nar").select("id").where("storage_key", "=", key).executeTakeFirst()) ??
            (await d.db.kysely.selectFrom("build_log").select("id").where("storage_key", "=", key).executeTakeFirst());
          if (owned) {
            await d.db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
            continue;
          }
        }
        const head = await d.storage.head(key);
        await d.storage.delete(key);
        await d.db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
        if (head) {
          objects++;
          bytes += head.size;
        }
        await d.checkpoint?.("storage");
      }
    };
    await Promise.all(Array.from({ length: STORAGE_CONCURRENCY }, worker));
  }
  return { objects, bytes };
}

export async function collectGarbage(d: GcDeps, now = Date.now()): Promise<GcStats> {
  const started = performance.now();
  try {
    const staged = await expireStaged(d, now);
    const objects = await collectObjects(d, now);
    const buildLogs = await collectBuildLogs(d.db, { graceSeconds: d.gc.graceSeconds, retentionSeconds: d.buildLogs?.retentionSeconds ?? 0 }, now);
    await d.checkpoint?.("build-logs");
    const nars = await collectNars(d, now);
    const storage = await drainJournal(d, now);
    const stats: GcStats = {
      objects,
      nars,
      storage_objects: storage.objects,
      bytes_freed: storage.bytes,
      staged_expired: staged,
      build_logs: buildLogs,
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
