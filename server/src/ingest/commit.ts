/**
 * Makes an ingested NAR durable: dedup by NarHash against every cache, otherwise upload the
 * spool file to its storage key and insert the NAR row. The row is inserted only after the
 * storage object is whole, so a row always means "bytes present".
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { Db } from "../db/connect.ts";
import { findNarByHash, insertNar, type NarRow } from "../db/nars.ts";
import { encodeNixBase32 } from "../nix/base32.ts";
import type { Storage } from "../storage/types.ts";
import { storedExtension } from "./codecs.ts";
import type { Ingested } from "./pipeline.ts";

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

export async function commitNar(db: Db, storage: Storage, ing: Ingested, now = Date.now()): Promise<Committed> {
  try {
    const narHashHex = ing.nar.sha256.toString("hex");
    const existing = await findNarByHash(db, narHashHex);
    // Refreshing the row's age keeps GC (which only takes NARs older than the grace period) off
    // it until the caller links it; if GC took it just now, store the bytes anew.
    if (existing && (await touchNar(db, existing.id, now))) return { nar: existing, deduplicated: true };
    const key = narStorageKey(ing.nar.sha256, storedExtension(ing.compression));
    // Journal first: bytes that reach storage but never get a row (a crash) are found and removed by GC.
    await db.kysely.insertInto("storage_journal").values({ storage_key: key, kind: "upload", created_at: now }).execute();
    const stored = await storage.put(key, createReadStream(ing.spoolPath, { highWaterMark: 1 << 20 }));
    if (stored.size !== ing.file.size) {
      await storage.delete(key);
      throw new Error(`storage wrote ${stored.size} bytes for ${key}, expected ${ing.file.size}`);
    }
    const { row, inserted } = await db.kysely.transaction().execute(async (trx) => {
      const tx = { ...db, kysely: trx };
      const result = await insertNar(tx, {
        nar_hash: narHashHex,
        nar_size: ing.nar.size,
        compression: ing.compression,
        file_hash: encodeNixBase32(ing.file.sha256),
        file_size: ing.file.size,
        storage_key: key,
        created_at: now,
      });
      if (result.inserted) await trx.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
      return result;
    });
    if (!inserted) {
      // A concurrent upload of the same NAR won the insert; ours is a redundant copy.
      await storage.delete(key);
      await db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
      await touchNar(db, row.id, now);
    }
    return { nar: row, deduplicated: !inserted };
  } finally {
    await rm(ing.spoolPath, { force: true });
  }
}

async function touchNar(db: Db, id: number, now: number): Promise<boolean> {
  const r = await db.kysely.updateTable("nar").set({ created_at: now }).where("id", "=", id).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
