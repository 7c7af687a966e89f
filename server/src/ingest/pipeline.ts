/**
 * The one ingest pipeline both push protocols share:
 *   body → count + SHA-256 (as uploaded) → decompress → count + SHA-256 + NAR validation
 *        → compress → count + SHA-256 (as stored) → spool file
 * Nothing holds a whole NAR in memory. When the upload already uses the stored compression the
 * uploaded bytes are spooled as they are and only decompressed to be hashed and validated:
 * compressing once means not compressing again what the client compressed.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform, Writable, type Duplex, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { badRequest, ServerError } from "../errors.ts";
import { NarParser } from "../nix/nar.ts";
import { NixFormatError } from "../nix/errors.ts";
import type { StoredCompression } from "../config/load.ts";
import { compressor, decompressor, type UploadCompression } from "./codecs.ts";

export interface Digest {
  sha256: Buffer;
  size: number;
}

export interface Ingested {
  /** The bytes as the client sent them. */
  upload: Digest;
  /** The uncompressed NAR. */
  nar: Digest;
  /** The bytes as stored (equal to `upload` when they were kept as sent). */
  file: Digest;
  spoolPath: string;
  compression: StoredCompression;
}

export interface IngestOptions {
  body: Readable;
  input: UploadCompression;
  stored: { type: StoredCompression; level: number };
  spoolDir: string;
  /** Stop reading an upload larger than this (compressed) many bytes. */
  maxUploadBytes?: number;
}

/** Hashes and counts what passes through, unchanged. */
class Tap extends Transform {
  readonly hash: Hash = createHash("sha256");
  size = 0;
  readonly #limit: number;
  readonly #onChunk: ((c: Buffer) => void) | undefined;
  constructor(limit = Number.POSITIVE_INFINITY, onChunk?: (c: Buffer) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#limit = limit;
    this.#onChunk = onChunk;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.#limit) {
      cb(new ServerError("PayloadTooLarge", `The upload exceeds the limit of ${this.#limit} bytes.`));
      return;
    }
    this.hash.update(chunk);
    try {
      this.#onChunk?.(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }
  digest(): Digest {
    return { sha256: this.hash.digest(), size: this.size };
  }
}

/** Consumes a stream, only counting (the NAR branch when the upload is stored as sent). */
class Sink extends Writable {
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    cb();
  }
}

function narError(e: unknown, decodeErrors: WeakSet<object>): unknown {
  if (e instanceof NixFormatError) return badRequest(`the upload is not a valid NAR: ${e.message}`);
  if (e instanceof ServerError) return e;
  // Whatever the decompressor rejects is bytes that are not in the compression the client named.
  if (typeof e === "object" && e !== null && decodeErrors.has(e)) {
    return badRequest(`the upload does not decompress: ${(e as Error).message}`);
  }
  return e;
}

function decoding(d: Duplex, decodeErrors: WeakSet<object>): Duplex {
  d.on("error", (e) => decodeErrors.add(e));
  return d;
}

export async function ingest(opts: IngestOptions): Promise<Ingested> {
  const spoolPath = join(opts.spoolDir, `ingest-${randomBytes(12).toString("hex")}.tmp`);
  const parser = new NarParser();
  const uploadTap = new Tap(opts.maxUploadBytes);
  const narTap = new Tap(undefined, (c) => parser.push(c));
  const keepAsSent = opts.input === opts.stored.type;
  const decodeErrors = new WeakSet<object>();
  try {
    if (keepAsSent) {
      // Two branches read the same upload: the spool gets the bytes, the decompressor proves them.
      const decomp = decoding(decompressor(opts.input), decodeErrors);
      const proving = pipeline(decomp, narTap, new Sink());
      const forward = new Transform({
        highWaterMark: 1 << 20,
        transform(chunk: Buffer, _e, cb) {
          if (decomp.write(chunk)) cb(null, chunk);
          else decomp.once("drain", () => cb(null, chunk));
        },
        flush(cb) {
          decomp.end();
          cb();
        },
      });
      const spooling = pipeline(opts.body, uploadTap, forward, createWriteStream(spoolPath, { highWaterMark: 1 << 20 }));
      // If either branch fails the other must not wait for data that never comes.
      spooling.catch((e) => decomp.destroy(e as Error));
      proving.catch((e) => forward.destroy(e as Error));
      await Promise.all([spooling, proving]);
      parser.end();
      const upload = uploadTap.digest();
      return { upload, nar: narTap.digest(), file: upload, spoolPath, compression: opts.stored.type };
    }
    const fileTap = new Tap();
    await pipeline(
      opts.body,
      uploadTap,
      decoding(decompressor(opts.input), decodeErrors),
      narTap,
      compressor(opts.stored.type, opts.stored.level),
      fileTap,
      createWriteStream(spoolPath, { highWaterMark: 1 << 20 }),
    );
    parser.end();
    return { upload: uploadTap.digest(), nar: narTap.digest(), file: fileTap.digest(), spoolPath, compression: opts.stored.type };
  } catch (e) {
    await rm(spoolPath, { force: true });
    throw narError(e, decodeErrors);
  }
}
