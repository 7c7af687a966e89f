/**
 * Realisations per cache. One is served only while its output path is served by the same cache
 * and every realisation it depends on is served too, so a reader never gets one that leads to a
 * missing path (invariant 1 for realisations).
 */
import type { Selectable } from "kysely";
import type { Db } from "./connect.ts";
import type { RealisationTable } from "./schema.ts";

export type RealisationRow = Selectable<RealisationTable>;

export interface NewRealisation {
  cacheId: number;
  drvOutput: string;
  outPath: string;
  dependents: Record<string, string>;
  sigs: string[];
  signature: string;
  keyVersion: number;
}

/** Stores a realisation; an existing one for the same output must agree on the path ("conflict" otherwise) and gains the new signatures. */
export async function saveRealisation(db: Db, r: NewRealisation, now = Date.now()): Promise<"stored" | "conflict"> {
  return db.kysely.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto("realisation")
      .values({
        cache_id: r.cacheId,
        drv_output: r.drvOutput,
        out_path: r.outPath,
        out_path_hash: r.outPath.slice(0, 32),
        dependents: JSON.stringify(r.dependents),
        sigs: JSON.stringify(r.sigs),
        signature: r.signature,
        signature_key_version: r.keyVersion,
        created_at: now,
      })
      .onConflict((oc) => oc.columns(["cache_id", "drv_output"]).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0) return "stored";
    const old = await trx.selectFrom("realisation").selectAll().where("cache_id", "=", r.cacheId).where("drv_output", "=", r.drvOutput).executeTakeFirst();
    if (!old) return "conflict";
    if (old.out_path !== r.outPath) return "conflict";
    const sigs = [...new Set([...(JSON.parse(old.sigs) as string[]), ...r.sigs])].sort();
    const oldDeps = JSON.parse(old.dependents) as Record<string, string>;
    // Nix tolerates an older realisation without dependencies; the fuller one is kept.
    const dependents = Object.keys(oldDeps).length === 0 ? r.dependents : oldDeps;
    await trx.updateTable("realisation").set({ sigs: JSON.stringify(sigs), dependents: JSON.stringify(dependents) }).where("id", "=", old.id).execute();
    return "stored";
  });
}

/** A realisation this cache serves: stored, its out path present, its dependencies served. */
export async function findServedRealisation(db: Db, cacheId: number, drvOutput: string): Promise<RealisationRow | undefined> {
  const row = await db.kysely
    .selectFrom("realisation")
    .selectAll("realisation")
    .where("realisation.cache_id", "=", cacheId)
    .where("realisation.drv_output", "=", drvOutput)
    .where((eb) => eb.exists(eb.selectFrom("object").select("object.id").whereRef("object.cache_id", "=", "realisation.cache_id").whereRef("object.store_path_hash", "=", "realisation.out_path_hash")))
    .executeTakeFirst();
  if (!row) return undefined;
  const deps = Object.entries(JSON.parse(row.dependents) as Record<string, string>);
  if (deps.length === 0) return row;
  const served = await db.kysely
    .selectFrom("realisation")
    .select(["realisation.drv_output", "realisation.out_path"])
    .where("realisation.cache_id", "=", cacheId)
    .where("realisation.drv_output", "in", deps.map(([id]) => id))
    .where((eb) => eb.exists(eb.selectFrom("object").select("object.id").whereRef("object.cache_id", "=", "realisation.cache_id").whereRef("object.store_path_hash", "=", "realisation.out_path_hash")))
    .execute();
  const have = new Map(served.map((s) => [s.drv_output, s.out_path]));
  return deps.every(([id, path]) => have.get(id) === path) ? row : undefined;
}

export async function saveRealisationSignature(db: Db, id: number, signature: string, keyVersion: number): Promise<void> {
  await db.kysely.updateTable("realisation").set({ signature, signature_key_version: keyVersion }).where("id", "=", id).execute();
}
