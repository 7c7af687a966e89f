/**
 * Stored NAR listings: compressed once for the database, and computed on first request for NARs
 * ingested before listings existed (one streaming read of the stored NAR, then kept like any
 * other). Concurrent first requests for the same NAR share that one read.
 */
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { Db } from "./db/connect.ts";
import { saveListing } from "./db/listings.ts";
import { decompressor, isUploadCompression } from "./ingest/codecs.ts";
import { NarParser } from "./nix/nar.ts";
import { NarListing } from "./nix/nar-listing.ts";
import type { StoragePool } from "./storage/pool.ts";

const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress);

export async function compressListing(listing: Buffer | null): Promise<Buffer | null> {
  // The size up front sizes zstd's context to the listing (a full-window context costs 0.5 ms, per NAR ingested).
  return listing === null ? null : zstdCompress(listing, { pledgedSrcSize: listing.length });
}

export async function decompressListing(stored: Buffer): Promise<Buffer> {
  return zstdDecompress(stored);
}

const inFlight = new Map<number, Promise<Buffer | null>>();

/** The listing of a stored NAR that has none yet, read from storage once and saved. */
export function listStoredNar(db: Db, pool: StoragePool, nar: { narId: number; storageKey: string; backend: string; compression: string }): Promise<Buffer | null> {
  let running = inFlight.get(nar.narId);
  if (running === undefined) {
    running = (async () => {
      if (!isUploadCompression(nar.compression)) throw new Error(`stored NAR ${nar.storageKey} has unknown compression ${nar.compression}`);
      const listing = new NarListing();
      const parser = new NarParser(listing);
      const sink = new Writable({
        write(chunk: Buffer, _e, cb) {
          try {
            parser.push(chunk);
            cb();
          } catch (e) {
            cb(e as Error);
          }
        },
      });
      await pipeline(await pool.get(nar.backend).storage.get(nar.storageKey), decompressor(nar.compression), sink);
      parser.end();
      const result = listing.result();
      await saveListing(db, nar.narId, await compressListing(result));
      return result;
    })().finally(() => inFlight.delete(nar.narId));
    inFlight.set(nar.narId, running);
  }
  return running;
}
