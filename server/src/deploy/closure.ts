/**
 * Whether a deployment target may be handed to agents: every path of its closure is in the cache,
 * and the signature the cache serves for it verifies under the cache's key. Agents trust only
 * that key, so a path that fails here would make every host's fetch fail halfway through a
 * rollout; refusing up front names the paths instead.
 *
 * The walk reads the stored references (never the uploader's word that the closure is complete)
 * and checks each stored signature against the fingerprint rebuilt from the stored columns, so a
 * row changed after it was signed counts as unsigned. A path not signed yet (larder signs when a
 * narinfo is first served) is signed here, as that first read would.
 */
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { CacheRow } from "../db/caches.ts";
import { fingerprint } from "../nix/fingerprint.ts";
import { sha256FromDigest } from "../nix/hash.ts";
import { publicKeyOf, signFingerprint, verifySignature } from "../nix/signing.ts";
import { cacheSecretKey } from "../narinfo-view.ts";

export interface ClosureCheck {
  /** Full store paths of the closure missing from the cache. */
  missing: string[];
  /** Full store paths present but without a valid signature by the cache's key. */
  unsigned: string[];
  /** Store-path hashes of every path found. */
  found: Set<string>;
}

const BATCH = 500;

/** Walks the closures of `roots` (base names) breadth-first, a batch of hashes per query. */
export async function checkClosure(trx: Kysely<Database>, cache: CacheRow, roots: readonly string[]): Promise<ClosureCheck> {
  const sk = cacheSecretKey(cache);
  const pk = publicKeyOf(sk);
  const seen = new Map<string, string>();
  let frontier: string[] = [];
  for (const r of roots) {
    const h = r.slice(0, 32);
    if (!seen.has(h)) {
      seen.set(h, r);
      frontier.push(h);
    }
  }
  const found = new Set<string>();
  const unsigned: string[] = [];
  const toSave: { id: number; signature: string }[] = [];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (let i = 0; i < frontier.length; i += BATCH) {
      const rows = await trx
        .selectFrom("object")
        .innerJoin("nar", "nar.id", "object.nar_id")
        .select(["object.id", "object.store_path_hash", "object.store_path", "object.refs", "object.signature", "object.signature_key_version", "nar.nar_hash", "nar.nar_size"])
        .where("object.cache_id", "=", cache.id)
        .where("object.store_path_hash", "in", frontier.slice(i, i + BATCH))
        .execute();
      for (const row of rows) {
        found.add(row.store_path_hash);
        let refs: string[];
        let fp: string;
        try {
          refs = JSON.parse(row.refs) as string[];
          fp = fingerprint(row.store_path, sha256FromDigest(Buffer.from(row.nar_hash, "hex")), row.nar_size, refs);
        } catch {
          // Metadata no fingerprint can be made of: nothing could sign or verify it.
          unsigned.push(row.store_path);
          continue;
        }
        if (row.signature !== null && row.signature_key_version === cache.key_version) {
          if (!verifySignature(pk, fp, row.signature)) unsigned.push(row.store_path);
        } else {
          toSave.push({ id: row.id, signature: signFingerprint(sk, fp) });
        }
        for (const ref of refs) {
          const h = ref.slice(0, 32);
          if (!seen.has(h)) {
            seen.set(h, ref);
            next.push(h);
          }
        }
      }
    }
    frontier = next;
  }
  for (const s of toSave) {
    await trx.updateTable("object").set({ signature: s.signature, signature_key_version: cache.key_version }).where("id", "=", s.id).execute();
  }
  const missing = [...seen].filter(([h]) => !found.has(h)).map(([, base]) => `${cache.store_dir}/${base}`);
  return { missing: missing.sort(), unsigned: unsigned.sort(), found };
}
