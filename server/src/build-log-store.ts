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
import type { Storage } from "./storage/types.ts";

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
  storage: Storage;
  cacheId: number;
  drvName: string;
  drvHash: string;
  body: Readable;
  encoding: UploadCompression;
  maxBytes: number;
}

/** Stores a log and records it for its cache and derivation; returns its uncompressed size. */
export async function storeBuildLog(o: StoreLogOptions): Promise<number> {
  const key = `log/${o.drvHash.slice(0, 2)}/${o.drvHash}-${randomBytes(4).toString("hex")}.zst`;
  await o.db.kysely.insertInto("storage_journal").values({ storage_key: key, kind: "upload", created_at: Date.now() }).execute();
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
  decode.on("error", (e) => fail(badRequest(`the build log does not decompress: ${e.message}`)));
  limit.on("error", fail);
  o.body.on("error", fail);
  o.body.pipe(decode).pipe(limit).pipe(compress);
  try {
    await o.storage.put(key, compress);
  } catch (e) {
    await o.storage.delete(key).catch(() => {});
    throw failure ?? e;
  }
  if (failure !== undefined) {
    await o.storage.delete(key);
    throw failure;
  }
  await saveBuildLog(o.db, o.cacheId, o.drvName, key, limit.size);
  return limit.size;
}
