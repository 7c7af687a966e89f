/**
 * Signing keys registered by `cachix generate-keypair` (POST …/key). The client keeps the secret
 * half and signs what it pushes with it; the server names the key, lists it in the cache's
 * `publicSigningKeys`, and keeps the signatures that verify with it next to its own.
 */
import type { Db } from "../db/connect.ts";
import type { PublicKey } from "../nix/signing.ts";

export async function registeredKeys(db: Db, cacheId: number): Promise<PublicKey[]> {
  const rows = await db.kysely.selectFrom("cachix_key").select(["key_name", "public_key"]).where("cache_id", "=", cacheId).orderBy("id").execute();
  return rows.map((r) => ({ name: r.key_name, key: Buffer.from(r.public_key, "base64") }));
}

/**
 * The name Cachix gives a cache's key, `<cache>.<host>-1` (its deploy agent trusts
 * `<cache>.cachix.org-1` by that rule), with the host the client talks to.
 */
export function cachixKeyName(cacheName: string, apiEndpoint: string): string {
  return `${cacheName}.${new URL(apiEndpoint).hostname}-1`;
}

export async function registerKey(db: Db, cacheId: number, keyName: string, publicKeyBase64: string, now = Date.now()): Promise<void> {
  await db.kysely
    .insertInto("cachix_key")
    .values({ cache_id: cacheId, key_name: keyName, public_key: publicKeyBase64, created_at: now })
    .onConflict((oc) => oc.columns(["cache_id", "public_key"]).doNothing())
    .execute();
}
