/** Build logs per cache and derivation; the bytes live in storage under `storage_key`. */
import type { Db } from "./connect.ts";

export interface BuildLogRow {
  storage_key: string;
  backend: string;
  size: number;
}

export async function findBuildLog(db: Db, cacheId: number, drvName: string): Promise<BuildLogRow | undefined> {
  return db.kysely
    .selectFrom("build_log")
    .select(["storage_key", "backend", "size"])
    .where("cache_id", "=", cacheId)
    .where("drv_name", "=", drvName)
    .executeTakeFirst();
}

/**
 * Records a stored log, replacing an earlier one for the same derivation: the earlier bytes enter
 * the storage journal for deletion, and the new key leaves it as "upload", in one transaction.
 */
export async function saveBuildLog(db: Db, cacheId: number, drvName: string, storageKey: string, backend: string, size: number, now = Date.now()): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    const old = await trx
      .selectFrom("build_log")
      .select(["id", "storage_key", "backend"])
      .where("cache_id", "=", cacheId)
      .where("drv_name", "=", drvName)
      .executeTakeFirst();
    if (old) {
      await trx
        .insertInto("storage_journal")
        .values({ storage_key: old.storage_key, kind: "delete", backend: old.backend, created_at: now })
        .onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete" }))
        .execute();
      await trx.updateTable("build_log").set({ storage_key: storageKey, backend, size, created_at: now }).where("id", "=", old.id).execute();
    } else {
      // Two first uploads of one log at once: the one that inserts first wins, the other's bytes are journaled.
      const lost = await trx
        .insertInto("build_log")
        .values({ cache_id: cacheId, drv_name: drvName, storage_key: storageKey, backend, size, created_at: now })
        .onConflict((oc) => oc.columns(["cache_id", "drv_name"]).doNothing())
        .executeTakeFirst();
      if (Number(lost.numInsertedOrUpdatedRows ?? 1n) === 0) {
        await trx.insertInto("storage_journal").values({ storage_key: storageKey, kind: "delete", backend, created_at: now }).onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete" })).execute();
        return;
      }
    }
    await trx.deleteFrom("storage_journal").where("storage_key", "=", storageKey).where("kind", "=", "upload").execute();
  });
}
