/**
 * Build logs in storage: zstd-compressed once on upload (logs shrink about tenfold), bounded in
 * size as they stream, journaled so a crash mid-upload leaves bytes GC finds and removes.
 */
import { randomBytes } from "node:crypto";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import zlib from "node:zlib";
import type { Db } from "./db/connect.ts";
import { saveBuildLog } from "./db/build-logs.ts";
import { badRequest, ServerError } from "./errors.ts";
import { decompressor, type UploadCompression } from "./ingest/codecs.ts";
import type { Backend, StoragePool } from "./storage/pool.ts";

/** Content-Encoding of a log upload → the decompressor to undo it. */
const ENCODINGS = new Map<string, UploadCompression>([
  ["identity", "none"],
  ["gzip", "gzip"],
  ["x-gzip", "gzip"],
  ["zstd", "zstd"],
  ["br", "br"],
  ["xz", "xz"],
  ["bzip2", "bzip2"],
]);

export function logEncoding(header: string | undefined): UploadCompression {
  if (header === undefined || header.trim() === "") return "none";
  const c = ENCODINGS.get(header.trim().toLowerCase());
  if (c === undefined) throw badRequest(`unsupported Content-Encoding "${header.slice(0, 40)}" for a build log (use identity, gzip, zstd, br, xz or bzip2)`);
  return c;
}

export const logTooLarge = (max: number) => new ServerError("PayloadTooLarge", `The build log is larger than the limit of ${max} bytes (build-logs.max-size).`);

class Limit extends Transform {
  size = 0;
  readonly max: number;
  constructor(max: number) {
    super();
    this.max = max;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.max) cb(logTooLarge(this.max));
    else cb(null, chunk);
  }
}

export interface StoreLogOptions {
  db: Db;
  pool: StoragePool;
  cacheId: number;
  cacheName?: string;
  drvName: string;
  drvHash: string;
  body: Readable;
  encoding: UploadCompression;
  maxBytes: number;
}

/** Stores a log and records it for its cache and derivation; returns its uncompressed size. */
export async function storeBuildLog(o: StoreLogOptions): Promise<number> {
  const key = `log/${o.drvHash.slice(0, 2)}/${o.drvHash}-${randomBytes(4).toString("hex")}.zst`;
  const decode = decompressor(o.encoding);
  const limit = new Limit(o.maxBytes);
  const compress = zlib.createZstdCompress();
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
    // The request is drained, not destroyed, so the client still reads the answer (413, 400).
    o.body.unpipe(decode);
    o.body.resume();
    compress.destroy(e as Error);
  };
  let started = false;
  let backend: Backend;
  try {
    // The body streams once, so a failed backend cannot be retried with it (size 0: not known yet).
    ({ backend } = await o.pool.write(
      o.cacheName,
      0,
      async (b) => {
        await o.db.kysely.insertInto("storage_journal").values({ storage_key: key, kind: "upload", backend: b.name, created_at: Date.now() }).execute();
        started = true;
        decode.on("error", (e) => fail(badRequest(`the build log does not decompress: ${e.message}`)));
        limit.on("error", fail);
        o.body.on("error", fail);
        o.body.pipe(decode).pipe(limit).pipe(compress);
        try {
          await b.storage.put(key, compress);
        } catch (e) {
          await b.storage.delete(key).catch(() => {});
          throw failure ?? e;
        }
      },
      async () => false,
    ));
  } catch (e) {
    // Refused before reading (no backend could take it): drain the body so the client reads the answer.
    if (!started) o.body.resume();
    throw failure ?? e;
  }
  if (failure !== undefined) {
    await backend.storage.delete(key);
    throw failure;
  }
  await saveBuildLog(o.db, o.cacheId, o.drvName, key, backend.name, limit.size);
  return limit.size;
}
