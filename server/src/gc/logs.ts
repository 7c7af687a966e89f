/**
 * Build logs leave with their derivation's outputs: a log is collected once no object in its
 * cache names its derivation as Deriver (after the grace period, so a log pushed just before its
 * outputs survives), when it is older than build-logs.retention (if set), or when its cache is
 * gone. Rows leave and their bytes enter the storage journal in one transaction; the journal
 * drain deletes the bytes.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { sql } from "kysely";
import type { Db } from "../db/connect.ts";

const BATCH = 500;

export async function collectBuildLogs(db: Db, opts: { graceSeconds: number; retentionSeconds: number }, now: number): Promise<number> {
  const graceCutoff = now - opts.graceSeconds * 1000;
  const retentionCutoff = opts.retentionSeconds > 0 ? now - opts.retentionSeconds * 1000 : Number.MIN_SAFE_INTEGER;
  const dead = sql<boolean>`(
    not exists (select 1 from cache c where c.id = build_log.cache_id and c.deleted_at is null)
    or build_log.created_at < ${retentionCutoff}
    or (build_log.created_at < ${graceCutoff} and not exists (
      select 1 from object o where o.cache_id = build_log.cache_id and o.deriver = build_log.drv_name)))`;
  let total = 0;
  for (;;) {
    const deleted = await db.kysely.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom("build_log").select(["id", "storage_key", "backend"]).where(dead).limit(BATCH).execute();
      if (rows.length === 0) return 0;
      await trx
        .insertInto("storage_journal")
        .values(rows.map((r) => ({ storage_key: r.storage_key, kind: "delete" as const, backend: r.backend, created_at: now })))
        .onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete" }))
        .execute();
      await trx.deleteFrom("build_log").where("id", "in", rows.map((r) => r.id)).execute();
      return rows.length;
    });
    total += deleted;
    await yieldToEventLoop();
    if (deleted === 0) return total;
  }
}
