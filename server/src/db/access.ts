/**
 * Last-access updates for retention: by object, by NAR within a cache, by store-path hash.
 * A row used less than ACCESS_GRANULARITY_MS ago is not written again: popular paths and
 * closures that CI asks about again and again cost a lookup, not a write (and no move in GC's
 * access-time index). GC allows for it by keeping paths that much past retention.
 */
import { setImmediate as turn } from "node:timers/promises";
import { sql } from "kysely";
import type { Db } from "./connect.ts";

export const ACCESS_GRANULARITY_MS = 5 * 60_000;

// Unary `+`: SQLite must look rows up by the id, NAR or hash given, not walk the access-time index.
const stale = (now: number) => sql<boolean>`+last_accessed_at < ${now - ACCESS_GRANULARITY_MS}`;

/**
 * Ids in ascending order, so each statement's rows (and their access-index entries, which share
 * one time) sit on neighbouring pages: hits arrive in random order, and 500 random ids per
 * statement dirtied about 500 pages, four times the work per row (bench/access-writes.ts, docs/PERFORMANCE.md).
 */
export async function touchObjectIds(db: Db, ids: readonly number[], now: number): Promise<void> {
  const sorted = Float64Array.from(ids).sort();
  for (let i = 0; i < sorted.length; i += 500) {
    // SQLite runs each statement on the event loop's thread: a turn between them lets requests in
    // (a flush after a burst of first reads is hundreds of statements).
    if (i > 0) await turn();
    await db.kysely.updateTable("object").set({ last_accessed_at: now }).where("id", "in", Array.from(sorted.subarray(i, i + 500))).where(stale(now)).execute();
  }
}

/** A NAR download counts as use of every path of that cache that shares the NAR. */
export async function touchCacheNars(db: Db, cacheId: number, narIds: readonly number[], now: number): Promise<void> {
  narIds = Array.from(Float64Array.from(narIds).sort());
  for (let i = 0; i < narIds.length; i += 500) {
    if (i > 0) await turn();
    await db.kysely
      .updateTable("object")
      .set({ last_accessed_at: now })
      .where("cache_id", "=", cacheId)
      .where("nar_id", "in", narIds.slice(i, i + 500))
      .where(stale(now))
      .execute();
  }
}
