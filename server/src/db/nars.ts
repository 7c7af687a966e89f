/** Global NAR rows (one per NarHash) and NARs staged by Nix's own push before their narinfo. */
import type { Selectable } from "kysely";
import type { Db } from "./connect.ts";
import type { NarTable } from "./schema.ts";

export type NarRow = Selectable<NarTable>;
export type NewNar = Omit<NarRow, "id">;

export async function findNarByHash(db: Db, narHashHex: string): Promise<NarRow | undefined> {
  return db.kysely.selectFrom("nar").selectAll().where("nar_hash", "=", narHashHex).executeTakeFirst();
}

export async function findNarById(db: Db, id: number): Promise<NarRow | undefined> {
  return db.kysely.selectFrom("nar").selectAll().where("id", "=", id).executeTakeFirst();
}

/**
 * Inserts a NAR row unless one with the same NarHash exists; returns the row that won and
 * whether it was ours (when it was not, the caller's stored copy is redundant).
 */
export async function insertNar(db: Db, nar: NewNar): Promise<{ row: NarRow; inserted: boolean }> {
  const inserted = await db.kysely
    .insertInto("nar")
    .values(nar)
    .onConflict((oc) => oc.column("nar_hash").doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return { row: inserted, inserted: true };
  const existing = await findNarByHash(db, nar.nar_hash);
  if (!existing) throw new Error("NAR row vanished between insert and select");
  return { row: existing, inserted: false };
}

/** A NAR this cache serves, named by the file hash of the stored bytes (our narinfo URL). */
export async function findServedNar(db: Db, cacheId: number, fileHash: string): Promise<NarRow | undefined> {
  return db.kysely
    .selectFrom("nar")
    .selectAll("nar")
    .where("nar.file_hash", "=", fileHash)
    .where((eb) => eb.exists(eb.selectFrom("object").select("object.id").whereRef("object.nar_id", "=", "nar.id").where("object.cache_id", "=", cacheId)))
    .executeTakeFirst();
}

/**
 * Whether this cache already has the NAR Nix names by its upload file hash: served by us, pushed
 * earlier under that name, or staged and waiting for its narinfo. Only this cache's objects count,
 * so HEAD never reveals what other caches hold.
 */
export async function cacheHasUploadFile(db: Db, cacheId: number, fileHash: string): Promise<boolean> {
  const k = db.kysely;
  const row = await k
    .selectNoFrom((eb) => [
      eb.exists(k.selectFrom("object").select("id").where("cache_id", "=", cacheId).where("upload_file_hash", "=", fileHash)).as("pushed"),
      eb.exists(k.selectFrom("staged_nar").select("id").where("cache_id", "=", cacheId).where("upload_file_hash", "=", fileHash)).as("staged"),
    ])
    .executeTakeFirst();
  if (row && (Number(row.pushed) || Number(row.staged))) return true;
  return (await findServedNar(db, cacheId, fileHash)) !== undefined;
}

export async function stageNar(db: Db, cacheId: number, uploadFileHash: string, uploadFileSize: number, narId: number, now = Date.now()): Promise<void> {
  await db.kysely
    .insertInto("staged_nar")
    .values({ cache_id: cacheId, upload_file_hash: uploadFileHash, upload_file_size: uploadFileSize, nar_id: narId, created_at: now })
    .onConflict((oc) => oc.columns(["cache_id", "upload_file_hash"]).doUpdateSet({ nar_id: narId, upload_file_size: uploadFileSize, created_at: now }))
    .execute();
}

export async function findStagedNar(db: Db, cacheId: number, uploadFileHash: string) {
  return db.kysely
    .selectFrom("staged_nar")
    .innerJoin("nar", "nar.id", "staged_nar.nar_id")
    .selectAll("nar")
    .select(["staged_nar.id as staged_id", "staged_nar.upload_file_size"])
    .where("staged_nar.cache_id", "=", cacheId)
    .where("staged_nar.upload_file_hash", "=", uploadFileHash)
    .executeTakeFirst();
}
