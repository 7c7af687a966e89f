/**
 * Makes an ingested NAR durable: dedup by NarHash against every cache, otherwise store the
 * spool file (or a small upload's bytes) under its storage key and insert the NAR row. The row
 * is inserted only after the storage object is whole, so a row always means "bytes present".
 * What the caller links to the NAR (a staged upload, an object) is written in the same
 * transaction as the row: one commit per path fewer, which matters on PostgreSQL, where every
 * commit waits for its WAL to reach disk.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import type { Db } from "../db/connect.ts";
import { findNarByHash, insertNar, type NarRow } from "../db/nars.ts";
import { saveListing } from "../db/listings.ts";
import { compressListing } from "../listing-store.ts";
import { holdLiveCache } from "../db/caches.ts";
import { ServerError } from "../errors.ts";
import { storageFailure } from "./failures.ts";
import { encodeNixBase32 } from "../nix/base32.ts";
import { access } from "node:fs/promises";
import { storeFile } from "../storage/file.ts";
import type { Backend, StoragePool } from "../storage/pool.ts";
import { StorageError } from "../storage/types.ts";
import { storedExtension } from "./codecs.ts";
import { discardIngested, type Ingested } from "./pipeline.ts";

export interface Committed {
  nar: NarRow;
  /** True when the NAR was already stored (by this or any cache) and nothing new was written. */
  deduplicated: boolean;
}

/**
 * Storage keys derive from the NarHash, plus a random suffix: GC may be deleting an old copy of
 * the same NAR while a new upload of it lands, and distinct keys keep one from clobbering the other.
 */
export function narStorageKey(narHash: Buffer, ext: string): string {
  const h = encodeNixBase32(narHash);
  return `nar/${h.slice(0, 2)}/${h}-${randomBytes(4).toString("hex")}${ext}`;
}

/**
 * Writes what refers to the NAR, inside the transaction `tx` that makes or refreshes its row;
 * `existing` says the NAR was stored before this upload.
 */
export type LinkNar = (tx: Db, nar: NarRow, existing: boolean) => Promise<void>;

/** What the NAR is committed for: the cache it is linked into (which may be destroyed meanwhile) and how. */
export interface CommitTarget {
  cacheId: number;
  /** Picks the cache's storage placement (storage.caches); absent: the server's. */
  cacheName?: string;
  link: LinkNar;
}

export const cacheGone = () => new ServerError("NoSuchCache", "The cache was destroyed during the upload; nothing was stored.");

export async function commitNar(db: Db, pool: StoragePool, ing: Ingested, target?: CommitTarget, now = Date.now()): Promise<Committed> {
  const inTx = <T>(fn: (tx: Db) => Promise<T>): Promise<T> => db.kysely.transaction().execute((trx) => fn({ ...db, kysely: trx }));
  const link: LinkNar | undefined = target
    ? async (tx, nar, existing) => {
        if (!(await holdLiveCache(tx, target.cacheId))) throw cacheGone();
        await target.link(tx, nar, existing);
      }
    : undefined;
  try {
    const narHashHex = ing.nar.sha256.toString("hex");
    const listing = await compressListing(ing.listing);
    const existing = await findNarByHash(db, narHashHex);
    // Refreshing the row's age keeps GC (which only takes NARs older than the grace period) off
    // it until the caller links it; if GC took it just now, store the bytes anew.
    if (existing) {
      const linked = await inTx(async (tx) => {
        if (!(await touchNar(tx, existing.id, now))) return false;
        // A NAR stored before listings existed gets its listing now, at no extra read.
        await saveListing(tx, existing.id, listing, now);
        await link?.(tx, existing, true);
        return true;
      });
      if (linked) return { nar: existing, deduplicated: true };
    }
    const content = ing.content;
    let stored: Backend;
    let key: string;
    let settle: (stored?: boolean) => void;
    try {
      ({ backend: stored, value: key, settle } = await pool.write(
        target?.cacheName,
        ing.file.size,
        async (b) => {
          // A fresh key per attempt: a failed backend's journal entry may outlive the attempt.
          const key = narStorageKey(ing.nar.sha256, storedExtension(ing.compression));
          // Journal first: bytes that reach storage but never get a row (a crash) are found and removed by GC.
          await db.kysely.insertInto("storage_journal").values({ storage_key: key, kind: "upload", backend: b.name, created_at: now }).execute();
          let written;
          try {
            written =
              "bytes" in content
                ? await b.storage.put(key, Readable.from([content.bytes], { objectMode: false }))
                : await storeFile(b.storage, key, content.spoolPath);
          } catch (e) {
            await forget(db, b, key);
            throw e;
          }
          if (written.size !== ing.file.size) {
            await forget(db, b, key);
            throw new StorageError(`storage backend "${b.name}" wrote ${written.size} bytes for ${key}, expected ${ing.file.size}`);
          }
          return key;
        },
        // A backend may have taken the spool file before failing; then there is nothing to retry with.
        async () => "bytes" in content || (await access(content.spoolPath).then(() => true, () => false)),
        // Counted as being written until its row is committed (capacity, pool.ts).
        true,
        (key) => key,
      ));
    } catch (e) {
      throw storageFailure(e, "storage");
    }
    const { row, inserted } = await inTx(async (tx) => {
      const result = await insertNar(tx, {
        nar_hash: narHashHex,
        nar_size: ing.nar.size,
        compression: ing.compression,
        file_hash: encodeNixBase32(ing.file.sha256),
        file_size: ing.file.size,
        storage_key: key,
        backend: stored.name,
        created_at: now,
      });
      if (result.inserted) await tx.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
      // A concurrent upload of the same NAR won the insert: link to its row, keep it from GC.
      else await touchNar(tx, result.row.id, now);
      await saveListing(tx, result.row.id, listing, now);
      await link?.(tx, result.row, !result.inserted);
      return result;
    }).catch(async (e: unknown) => {
      // Nothing refers to the stored bytes: remove them now rather than leave them to GC.
      settle(false);
      await forget(db, stored, key);
      throw e;
    });
    settle(inserted);
    if (!inserted) {
      // Ours is a redundant copy; its journal entry goes with it.
      await stored.storage.delete(key);
      await db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
    }
    return { nar: row, deduplicated: !inserted };
  } finally {
    await discardIngested(ing);
  }
}

/** Best effort: a failure here leaves the journal entry, and GC removes the object later. */
async function forget(db: Db, backend: Backend, key: string): Promise<void> {
  try {
    await backend.storage.delete(key);
    await db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
  } catch {
    // GC's journal sweep finishes the job.
  }
}

async function touchNar(db: Db, id: number, now: number): Promise<boolean> {
  const r = await db.kysely.updateTable("nar").set({ created_at: now }).where("id", "=", id).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
