/**
 * Writing one entry of a cache's bucket layout, bottom-up: a narinfo is written only after its
 * NAR and the narinfo of every reference are in the layout (invariant 1 for the bucket).
 *
 * Each entry is recorded before its first key is written ("writing") and marked "published"
 * after its last, so a crash in between leaves a record that removal or the next sync finishes;
 * the narinfo, the one key Nix trusts, is always written last. A narinfo is put while the cache's
 * layout lock is held shared, after checking its entry was not taken for removal meanwhile;
 * removal takes the lock exclusively (bucket/remove.ts), so the two never cross.
 */
import type { Readable } from "node:stream";
import type { Selectable } from "kysely";
import type { Db } from "../db/connect.ts";
import type { CacheRow } from "../db/caches.ts";
import type { BucketEntryTable } from "../db/schema.ts";
import { findObject, saveSignatures, type ObjectWithNar } from "../db/objects.ts";
import { findListing } from "../db/listings.ts";
import { findBuildLog } from "../db/build-logs.ts";
import { findServedRealisation, saveRealisationSignature } from "../db/realisations.ts";
import { decompressListing } from "../listing-store.ts";
import { narInfoFor } from "../narinfo-view.ts";
import { realisationFor } from "../realisation-view.ts";
import { storedExtension } from "../ingest/codecs.ts";
import type { StoredCompression } from "../config/load.ts";
import { nixCacheInfo } from "../routes/nix-cache-info.ts";
import { CONTENT_TYPES, INFO_KEY, listingKey, logKey, narinfoKey, realisationKey } from "./keys.ts";
import { atomically } from "./lock.ts";
import type { LayoutRuntime } from "./runtime.ts";
import { pipeline } from "node:stream";
import zlib from "node:zlib";

export type EntryRow = Selectable<BucketEntryTable>;
type Kind = EntryRow["kind"];

export async function findEntry(db: Db, cacheId: number, kind: Kind, name: string): Promise<EntryRow | undefined> {
  return db.kysely.selectFrom("bucket_entry").selectAll().where("cache_id", "=", cacheId).where("kind", "=", kind).where("name", "=", name).executeTakeFirst();
}

/** The cache as the database has it now (the cache directory may be seconds behind). */
export async function currentCache(db: Db, id: number): Promise<CacheRow | undefined> {
  return db.kysely.selectFrom("cache").selectAll().where("id", "=", id).executeTakeFirst();
}

const refHashesOf = (refs: string, self: string): string[] =>
  [...new Set((JSON.parse(refs) as string[]).map((r) => r.slice(0, 32)))].filter((h) => h !== self);

/**
 * Records the entry as being written, after checking that what it needs (`needs`, store-path
 * hashes) is published at the same prefix. False when it cannot be written now (a need missing,
 * or the entry being removed).
 */
async function claim(rt: LayoutRuntime, cache: CacheRow, prefix: string, kind: Kind, name: string, needs: string[], narKey: string | null): Promise<number | undefined> {
  return rt.locked(cache.id, "shared", (db) =>
    atomically(db, async (tx) => {
      if (needs.length > 0) {
        let published = 0;
        for (let i = 0; i < needs.length; i += 500) {
          const rows = await tx.kysely
            .selectFrom("bucket_entry")
            .select("id")
            .where("cache_id", "=", cache.id)
            .where("kind", "=", "path")
            .where("prefix", "=", prefix)
            .where("state", "=", "published")
            .where("name", "in", needs.slice(i, i + 500))
            .execute();
          published += rows.length;
        }
        if (published < needs.length) return undefined;
      }
      const now = Date.now();
      const existing = await findEntry(tx, cache.id, kind, name);
      let id: number;
      if (existing) {
        if (existing.state === "removing" || existing.prefix !== prefix) return undefined;
        id = existing.id;
        // A published entry stays published while it is rewritten (a new signature): it may be needed by others.
        await tx.kysely.updateTable("bucket_entry").set({ nar_key: narKey, updated_at: now }).where("id", "=", id).execute();
        await tx.kysely.deleteFrom("bucket_ref").where("entry_id", "=", id).execute();
      } else {
        const row = await tx.kysely
          .insertInto("bucket_entry")
          .values({ cache_id: cache.id, prefix, kind, name, nar_key: narKey, state: "writing", key_version: cache.key_version, updated_at: now })
          .returning("id")
          .executeTakeFirstOrThrow();
        id = row.id;
      }
      if (needs.length > 0) await tx.kysely.insertInto("bucket_ref").values(needs.map((ref_hash) => ({ entry_id: id, cache_id: cache.id, ref_hash }))).execute();
      return id;
    }),
  );
}

/**
 * Puts the entry's final key and marks it published, under the shared lock and only if the
 * entry is still ours and the cache still wants a layout at this prefix.
 */
async function finish(rt: LayoutRuntime, cache: CacheRow, prefix: string, id: number, key: string, body: string | Buffer | (() => Promise<Readable>), type: string, step: string): Promise<boolean> {
  return rt.locked(cache.id, "shared", async (db) => {
    const entry = await db.kysely.selectFrom("bucket_entry").select(["state", "prefix"]).where("id", "=", id).executeTakeFirst();
    const now = await currentCache(db, cache.id);
    if (!entry || entry.state === "removing" || entry.prefix !== prefix || !now || rt.prefixOf(now) !== prefix) return false;
    await rt.checkpoint(step, key);
    if (typeof body !== "function") await rt.target.putText(key, body, type);
    else await rt.target.putStream(key, await body(), type);
    await db.kysely.updateTable("bucket_entry").set({ state: "published", key_version: cache.key_version, updated_at: Date.now() }).where("id", "=", id).execute();
    return true;
  });
}

export async function publishInfo(rt: LayoutRuntime, cache: CacheRow, prefix: string, rewrite: boolean): Promise<boolean> {
  const existing = await findEntry(rt.db, cache.id, "info", INFO_KEY);
  if (existing?.state === "published" && existing.prefix === prefix && !rewrite) return true;
  const id = await claim(rt, cache, prefix, "info", INFO_KEY, [], null);
  if (id === undefined) return false;
  return finish(rt, cache, prefix, id, prefix + INFO_KEY, nixCacheInfo(cache), CONTENT_TYPES.info, "info");
}

/** Copies the stored NAR to `key`: server-side when it lives in a bucket this target can read, else streamed through. */
async function writeNar(rt: LayoutRuntime, found: ObjectWithNar, key: string): Promise<void> {
  // Keys are content addresses (the compressed bytes' hash): one already there is this NAR.
  if (await rt.target.exists(key)) return;
  await rt.checkpoint("nar", key);
  const source = rt.copySource(found.nar.backend, found.nar.storage_key);
  if (source && (await rt.target.copy(source.bucket, source.key, key, found.nar.file_size))) return;
  const body: Readable = await rt.pool.get(found.nar.backend).storage.get(found.nar.storage_key);
  const size = await rt.target.putStream(key, body);
  if (size !== found.nar.file_size) throw new Error(`bucket layout: wrote ${size} bytes to ${key}, expected ${found.nar.file_size}`);
}

export const narKeyOf = (found: ObjectWithNar) => `nar/${found.nar.file_hash}${storedExtension(found.nar.compression as StoredCompression)}`;

/** Publishes one store path (its references first). True when it is in the layout afterwards. */
export async function publishPath(rt: LayoutRuntime, cache: CacheRow, prefix: string, hash: string, depth = 0): Promise<boolean> {
  const existing = await findEntry(rt.db, cache.id, "path", hash);
  if (existing?.state === "published" && existing.prefix === prefix && existing.key_version === cache.key_version) return true;
  const found = await findObject(rt.db, cache.id, hash);
  if (!found) return false;
  const refs = refHashesOf(found.object.refs, hash);
  for (const r of refs) {
    // Each reference once per process at a time; a closure deeper than this is left to sync, which goes bottom-up.
    if (depth > 1000 || !(await rt.once(`path:${cache.id}:${r}`, () => publishPath(rt, cache, prefix, r, depth + 1)))) return false;
  }
  if (!(await publishInfo(rt, cache, prefix, false))) return false;
  const narKey = narKeyOf(found);
  const id = await claim(rt, cache, prefix, "path", hash, refs, narKey);
  if (id === undefined) return false;
  if (existing?.state !== "published" || existing.nar_key !== narKey) {
    await writeNar(rt, found, prefix + narKey);
    const listing = await findListing(rt.db, cache.id, hash);
    if (listing.kind === "stored" && listing.listing !== null) {
      await rt.checkpoint("listing", prefix + listingKey(hash));
      await rt.target.putText(prefix + listingKey(hash), await decompressListing(listing.listing), CONTENT_TYPES.listing);
    }
  }
  const { text, newSignature } = narInfoFor(cache, found);
  if (newSignature !== undefined) await saveSignatures(rt.db, new Map([[found.object.id, { signature: newSignature, keyVersion: cache.key_version }]]));
  return finish(rt, cache, prefix, id, prefix + narinfoKey(hash), text, CONTENT_TYPES.narinfo, "narinfo");
}

/** Publishes a build log (plain text, as larderd serves it); logs need nothing else in the layout. */
export async function publishLog(rt: LayoutRuntime, cache: CacheRow, prefix: string, drvName: string): Promise<boolean> {
  const log = await findBuildLog(rt.db, cache.id, drvName);
  if (!log) return false;
  if (!(await publishInfo(rt, cache, prefix, false))) return false;
  const id = await claim(rt, cache, prefix, "log", drvName, [], null);
  if (id === undefined) return false;
  const plain = async () => pipeline((await rt.pool.get(log.backend).storage.get(log.storage_key)), zlib.createZstdDecompress(), () => {});
  return finish(rt, cache, prefix, id, prefix + logKey(drvName), plain, CONTENT_TYPES.log, "log");
}

/**
 * Publishes a realisation once its output path's narinfo and the realisations it depends on are
 * in the layout (Nix 2.8 substitutes those before it uses this one).
 */
export async function publishRealisation(rt: LayoutRuntime, cache: CacheRow, prefix: string, drvOutput: string, depth = 0): Promise<boolean> {
  const row = await findServedRealisation(rt.db, cache.id, drvOutput);
  if (!row) return false;
  if (!(await rt.once(`path:${cache.id}:${row.out_path_hash}`, () => publishPath(rt, cache, prefix, row.out_path_hash)))) return false;
  for (const dep of Object.keys(JSON.parse(row.dependents) as Record<string, string>)) {
    if (depth > 100 || !(await rt.once(`realisation:${cache.id}:${dep}`, () => publishRealisation(rt, cache, prefix, dep, depth + 1)))) return false;
  }
  const id = await claim(rt, cache, prefix, "realisation", drvOutput, [row.out_path_hash], null);
  if (id === undefined) return false;
  const { text, newSignature } = realisationFor(cache, row);
  if (newSignature !== undefined) await saveRealisationSignature(rt.db, row.id, newSignature, cache.key_version);
  return finish(rt, cache, prefix, id, prefix + realisationKey(drvOutput), text, CONTENT_TYPES.realisation, "realisation");
}
