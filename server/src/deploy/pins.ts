/**
 * A deployed closure and its rollback target are GC roots: rows of the ordinary `pin` table
 * (GC already keeps a pinned path and, through its references, its closure), under names that
 * start with RESERVED_PIN_PREFIX, which the pins API refuses to set or delete.
 */
import type { Trx } from "./store.ts";

export const RESERVED_PIN_PREFIX = "deploy.";

export function isReservedPinName(name: string): boolean {
  return name.startsWith(RESERVED_PIN_PREFIX);
}

/** Replaces the environment's pins with these targets and previous paths (store-path hashes). */
export async function replaceDeployPins(trx: Trx, cacheId: number, envName: string, targets: Iterable<string>, previous: Iterable<string>, now: number): Promise<void> {
  const prefix = `${RESERVED_PIN_PREFIX}${envName}.`;
  const old = await trx.selectFrom("pin").select(["id", "name"]).where("cache_id", "=", cacheId).where("name", "like", `${RESERVED_PIN_PREFIX}%`).execute();
  // The environment compared in code: in a LIKE pattern an "_" of its name would be a wildcard.
  const ids = old.filter((p) => p.name.startsWith(prefix)).map((p) => p.id);
  if (ids.length > 0) await trx.deleteFrom("pin").where("id", "in", ids).execute();
  const rows = new Map<string, string>();
  for (const h of previous) rows.set(`${prefix}previous.${h}`, h);
  for (const h of targets) rows.set(`${prefix}target.${h}`, h);
  if (rows.size === 0) return;
  await trx
    .insertInto("pin")
    .values([...rows].map(([name, store_path_hash]) => ({ cache_id: cacheId, name, store_path_hash, created_at: now })))
    .execute();
}
