/**
 * Realisations leave with their output path: once no object in the cache has the out path (and
 * the realisation is past the grace period, so one uploaded just before its path survives), the
 * row goes. Readers never see one without its path anyway (db/realisations.ts); this keeps the
 * table from growing.
 */
import { sql } from "kysely";
import type { Db } from "../db/connect.ts";

export async function collectRealisations(db: Db, graceSeconds: number, now: number): Promise<number> {
  const cutoff = now - graceSeconds * 1000;
  const r = await db.kysely
    .deleteFrom("realisation")
    .where("created_at", "<", cutoff)
    .where(sql<boolean>`not exists (select 1 from object o where o.cache_id = realisation.cache_id and o.store_path_hash = realisation.out_path_hash)`)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
