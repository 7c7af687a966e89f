/** NAR listings (`.ls`), one per NAR row, removed with it (foreign key cascade). */
import type { Db } from "./connect.ts";

/** Stores a NAR's listing unless it has one; `listing` null records "too large to keep". */
export async function saveListing(db: Db, narId: number, listing: Buffer | null, now = Date.now()): Promise<void> {
  await db.kysely
    .insertInto("nar_listing")
    .values({ nar_id: narId, listing, created_at: now })
    .onConflict((oc) => oc.column("nar_id").doNothing())
    .execute();
}

export type FoundListing =
  /** The path is not in this cache. */
  | { kind: "absent" }
  /** The path is here but its NAR predates listings: compute it from the stored NAR. */
  | { kind: "missing"; narId: number; storageKey: string; backend: string; compression: string }
  | { kind: "stored"; listing: Buffer | null };

export async function findListing(db: Db, cacheId: number, storePathHash: string): Promise<FoundListing> {
  const row = await db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .leftJoin("nar_listing", "nar_listing.nar_id", "nar.id")
    .select(["nar.id as nar_id", "nar.storage_key", "nar.backend", "nar.compression", "nar_listing.listing", "nar_listing.created_at as listed_at"])
    .where("object.cache_id", "=", cacheId)
    .where("object.store_path_hash", "=", storePathHash)
    .executeTakeFirst();
  if (!row) return { kind: "absent" };
  if (row.listed_at === null) return { kind: "missing", narId: row.nar_id, storageKey: row.storage_key, backend: row.backend, compression: row.compression };
  return { kind: "stored", listing: row.listing === null ? null : Buffer.from(row.listing) };
}
