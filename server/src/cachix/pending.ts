/**
 * Paths completed through the Cachix API before their references. The client uploads eight paths
 * at a time in no particular order, so a path may arrive before what it refers to; serving it then
 * would hand Nix a closure it cannot install (invariant 1). Such a path is held back: its NAR is
 * staged as Nix's own push stages a NAR before its narinfo (staged_nar keeps it from GC, and GC's
 * expiry of staged uploads takes the held path with it), and it becomes visible, in the same
 * transaction as the last of its references, once every one is present.
 */
import { sql, type Kysely } from "kysely";
import type { Db } from "../db/connect.ts";
import type { Database } from "../db/schema.ts";
import { lockCache, missingReferences, upsertObject, type NewObject } from "../db/objects.ts";

/**
 * Serialises holding and promoting within one cache on PostgreSQL: without it, a path that checks
 * for a reference while that reference's own commit checks for waiting paths could each miss the
 * other and the path would wait forever. SQLite has one writer at a time already.
 */
async function lockPending(trx: Kysely<Database>, db: Db, cacheId: number): Promise<void> {
  if (db.dialect !== "postgres") return;
  await sql`select pg_advisory_xact_lock(${0x43414348}::int, ${cacheId}::int)`.execute(trx);
}

export interface Placed {
  /** Store-path hashes that became visible: the path itself (unless held) and what waited for it. */
  visible: string[];
  /** References the path still waits for (empty when it is visible). */
  waitingFor: string[];
}

/**
 * Makes `object` visible if all its references are in the cache, else holds it back. Runs inside
 * the transaction `tx` that links the NAR (ingest/commit.ts), so a crash leaves neither.
 */
export async function placeObject(tx: Db, object: NewObject, uploadSize: number, now = Date.now()): Promise<Placed> {
  const trx = tx.kysely;
  await lockCache(trx, tx, object.cacheId, "shared");
  await lockPending(trx, tx, object.cacheId);
  const missing = await missingReferences(trx, object.cacheId, object.storePathHash, object.references);
  // A newer upload of the same path replaces one still waiting.
  const previous = await trx
    .selectFrom("cachix_pending")
    .select("staged_id")
    .where("cache_id", "=", object.cacheId)
    .where("store_path_hash", "=", object.storePathHash)
    .executeTakeFirst();
  if (previous) await trx.deleteFrom("staged_nar").where("id", "=", previous.staged_id).execute();
  if (missing.length === 0) {
    await upsertObject(tx, object, now);
    return { visible: [object.storePathHash, ...(await promoteWaiting(tx, object.cacheId, object.storePathHash, now))], waitingFor: [] };
  }
  // The staged row's name is never a real file hash ("-" is not nix-base32), so Nix's HEAD on a NAR URL never finds it.
  const staged = await trx
    .insertInto("staged_nar")
    .values({ cache_id: object.cacheId, upload_file_hash: `cachix-${object.storePathHash}`, upload_file_size: uploadSize, nar_id: object.narId, created_at: now })
    .onConflict((oc) => oc.columns(["cache_id", "upload_file_hash"]).doUpdateSet({ nar_id: object.narId, upload_file_size: uploadSize, created_at: now }))
    .returning("id")
    .executeTakeFirstOrThrow();
  const pending = await trx
    .insertInto("cachix_pending")
    .values({ cache_id: object.cacheId, staged_id: staged.id, store_path_hash: object.storePathHash, object: JSON.stringify(object), created_at: now })
    .returning("id")
    .executeTakeFirstOrThrow();
  const hashes = [...new Set(missing.map((r) => r.slice(0, 32)))];
  for (let i = 0; i < hashes.length; i += 500) {
    await trx
      .insertInto("cachix_pending_ref")
      .values(hashes.slice(i, i + 500).map((ref_hash) => ({ pending_id: pending.id, cache_id: object.cacheId, ref_hash })))
      .execute();
  }
  return { visible: [], waitingFor: missing };
}

/** Makes visible every held path whose last missing reference was `arrived`, and so on up. */
async function promoteWaiting(tx: Db, cacheId: number, arrived: string, now: number): Promise<string[]> {
  const trx = tx.kysely;
  const promoted: string[] = [];
  const queue = [arrived];
  while (queue.length > 0) {
    const hash = queue.shift()!;
    const waiting = await trx
      .selectFrom("cachix_pending_ref")
      .innerJoin("cachix_pending", "cachix_pending.id", "cachix_pending_ref.pending_id")
      .select(["cachix_pending.id", "cachix_pending.staged_id", "cachix_pending.object"])
      .where("cachix_pending_ref.cache_id", "=", cacheId)
      .where("cachix_pending_ref.ref_hash", "=", hash)
      .execute();
    for (const w of waiting) {
      const object = JSON.parse(w.object) as NewObject;
      await trx.deleteFrom("cachix_pending_ref").where("pending_id", "=", w.id).where("ref_hash", "=", hash).execute();
      if ((await missingReferences(trx, cacheId, object.storePathHash, object.references)).length > 0) {
        // Still waiting, but its closure is arriving: a big closure pushed referrers first may
        // take longer than GC's grace period, which counts from the last progress, not the start.
        await trx.updateTable("staged_nar").set({ created_at: now }).where("id", "=", w.staged_id).execute();
        continue;
      }
      await upsertObject(tx, object, now);
      // Takes the held row and its remaining references with it (ON DELETE CASCADE).
      await trx.deleteFrom("staged_nar").where("id", "=", w.staged_id).execute();
      promoted.push(object.storePathHash);
      queue.push(object.storePathHash);
    }
  }
  return promoted;
}

/** Whether these hashes are held back in the cache (for tests and the narinfo query). */
export async function heldHashes(db: Db, cacheId: number, hashes: readonly string[]): Promise<Set<string>> {
  if (hashes.length === 0) return new Set();
  const rows = await db.kysely.selectFrom("cachix_pending").select("store_path_hash").where("cache_id", "=", cacheId).where("store_path_hash", "in", hashes).execute();
  return new Set(rows.map((r) => r.store_path_hash));
}
