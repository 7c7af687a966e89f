/**
 * The one ingest pipeline both push protocols share:
 *   body → count + SHA-256 (as uploaded) → decompress → count + SHA-256 + NAR validation
 *        → compress → count + SHA-256 (as stored) → spool file
 * Nothing holds a whole NAR in memory. When the upload already uses the stored compression the
 * uploaded bytes are spooled as they are and only decompressed to be hashed and validated:
 * compressing once means not compressing again what the client compressed.
 */
import { createHash, type Hash } from "node:crypto";
import { createWriteStream, fdatasync, type WriteStream } from "node:fs";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Transform, Writable, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { badRequest, ServerError } from "../errors.ts";
import { peekHead } from "../http/peek.ts";
import { NarParser } from "../nix/nar.ts";
import { NarListing } from "../nix/nar-listing.ts";
import { NixFormatError } from "../nix/errors.ts";
import type { StoredCompression } from "../config/load.ts";
import { compressor, decompressor, type UploadCompression } from "./codecs.ts";
import { DecodeError } from "./process-codec.ts";
import { spoolFileName } from "./spool.ts";
import { closed } from "../util/closed.ts";
import { decodeSmallXz } from "./xz-small.ts";
import { clientGone, isStorageFailure, storageFailure } from "./failures.ts";

/**
 * Uploads up to this size (as sent) whose NAR is at most SMALL_NAR_BYTES are handled in memory:
 * for the small paths that make up most closures, setting up the streams and writing and
 * reading a spool file cost more than the work itself (bench, docs/PERFORMANCE.md). Bigger ones
 * stream, so memory per upload stays bounded by these two sizes.
 */
export const SMALL_UPLOAD_BYTES = 256 * 1024;
export const SMALL_NAR_BYTES = 1024 * 1024;

/**
 * The most compressed bytes a NAR of `maxNarBytes` can arrive as: incompressible data grows a
 * little in every format (block headers), never by more than this.
 */
export function maxUploadFor(maxNarBytes: number): number {
  return maxNarBytes + Math.ceil(maxNarBytes / 64) + 65536;
}

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
  /** Where the bytes to store are: a spool file, or memory for a small upload. */
  content: { spoolPath: string } | { bytes: Buffer };
  compression: StoredCompression;
  /** The NAR's `.ls` listing, made in the same parse; null when too large to keep. */
  listing: Buffer | null;
}

/** Drops what an ingest left behind (its spool file), for an upload that will not be committed. */
export async function discardIngested(ing: Ingested): Promise<void> {
  if ("spoolPath" in ing.content) await removeSpool(ing.content.spoolPath);
}

async function removeSpool(path: string): Promise<void> {
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
}

export interface IngestOptions {
  body: Readable;
  input: UploadCompression;
  stored: { type: StoredCompression; level: number };
  spoolDir: string;
  /** Stop reading an upload larger than this (compressed) many bytes. */
  maxUploadBytes?: number;
  /** Stop decompressing a NAR larger than this many bytes (max-nar-size). */
  maxNarBytes?: number;
  /** Largest upload handled in memory (default SMALL_UPLOAD_BYTES; 0 streams everything). */
  inMemoryBelow?: number;
  /**
   * The stored file will be made durable from the spool file (local storage fsyncs it before the
   * commit): write its data to disk while the upload goes on, so that fsync finds little left
   * instead of a big NAR's whole file, after the last byte arrived (docs/PERFORMANCE.md).
   */
  syncBehind?: boolean;
}

const SYNC_BEHIND_BYTES = 16 * 1024 * 1024;

/**
 * Passes bytes on to `file` unchanged and, every `every` bytes, asks the kernel to write what
 * the file has so far to disk (fdatasync, at most one at a time, in the thread pool). Failures
 * are left to the final fsync, which reports them.
 */
export class SyncBehind extends Transform {
  syncs = 0;
  readonly #every: number;
  #fd: number | undefined;
  #since = 0;
  #inFlight = false;
  constructor(file: WriteStream, every = SYNC_BEHIND_BYTES) {
    super({ highWaterMark: 1 << 20 });
    this.#every = every;
    // Open already (a stream made earlier), or about to be.
    const fd = (file as unknown as { fd?: unknown }).fd;
    if (typeof fd === "number") this.#fd = fd;
    else file.once("open", (opened: number) => (this.#fd = opened));
    // A closed descriptor's number may be reused by another file.
    file.once("close", () => (this.#fd = undefined));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#since += chunk.length;
    const fd = this.#fd;
    if (this.#since >= this.#every && !this.#inFlight && fd !== undefined) {
      this.#since = 0;
      this.#inFlight = true;
      this.syncs++;
      fdatasync(fd, () => {
        this.#inFlight = false;
      });
    }
    cb(null, chunk);
  }
}

/** Hashes and counts what passes through, unchanged. */
class Tap extends Transform {
  readonly hash: Hash = createHash("sha256");
  size = 0;
  readonly #limit: number;
  readonly #onChunk: ((c: Buffer) => void) | undefined;
  readonly #tooLarge: (limit: number) => ServerError;
  constructor(limit = Number.POSITIVE_INFINITY, onChunk?: (c: Buffer) => void, over = tooLarge) {
    super({ highWaterMark: 1 << 20 });
    this.#limit = limit;
    this.#onChunk = onChunk;
    this.#tooLarge = over;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.#limit) {
      cb(this.#tooLarge(this.#limit));
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

/**
 * Which part of an ingest failed first. A failing stream in a pipeline destroys the others with
 * the same error object, so only the first stream to emit an error is where it came from: a full
 * spool disk must not read as bytes that do not decompress.
 */
class FailureOrigin {
  readonly #origin = new WeakMap<object, "body" | "decode" | "spool">();
  watch<S extends NodeJS.EventEmitter>(stream: S, origin: "body" | "decode" | "spool"): S {
    stream.on("error", (e: unknown) => {
      if (typeof e === "object" && e !== null && !this.#origin.has(e)) this.#origin.set(e, origin);
    });
    return stream;
  }
  of(e: unknown): "body" | "decode" | "spool" | undefined {
    return typeof e === "object" && e !== null ? this.#origin.get(e) : undefined;
  }
}

function ingestError(e: unknown, origin: FailureOrigin): unknown {
  if (e instanceof NixFormatError) return badRequest(`the upload is not a valid NAR: ${e.message}`);
  if (e instanceof ServerError) return e;
  const from = origin.of(e);
  if (from === "spool" || isStorageFailure(e)) return storageFailure(e, "spool");
  if (from === "body") return clientGone();
  // Whatever the decompressor rejects is bytes that are not in the compression the client named.
  if (from === "decode" || e instanceof DecodeError) return badRequest(`the upload does not decompress: ${(e as Error).message}`);
  return e;
}

const tooLarge = (limit: number) => new ServerError("PayloadTooLarge", `The upload exceeds the limit of ${limit} bytes.`);
const narTooLarge = (limit: number) =>
  new ServerError("PayloadTooLarge", `The NAR exceeds the server's max-nar-size of ${limit} bytes (uncompressed).`);

// Decompressors with a one-shot form; the others (xz, bzip2) always stream.
const decompressSync: Partial<Record<UploadCompression, (b: Buffer, o: zlib.ZlibOptions & zlib.ZstdOptions) => Buffer>> = {
  none: (b) => b,
  zstd: zlib.zstdDecompressSync,
  gzip: zlib.gunzipSync,
  br: zlib.brotliDecompressSync,
};
const zstdCompress = promisify(zlib.zstdCompress);
const brotliCompress = promisify(zlib.brotliCompress);

/** The stored bytes of a small NAR, compressed off the event loop; undefined for a codec without a one-shot form. */
async function compressSmall(nar: Buffer, stored: IngestOptions["stored"]): Promise<Buffer | undefined> {
  switch (stored.type) {
    case "none":
      return nar;
    // The size up front lets the codec size its window and tables to the NAR: for a few KiB,
    // setting up a context for a full window cost ten times the compression itself.
    case "zstd":
      return zstdCompress(nar, { pledgedSrcSize: nar.length, params: { [zlib.constants.ZSTD_c_compressionLevel]: stored.level } });
    case "br":
      return brotliCompress(nar, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: stored.level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: nar.length } });
    default:
      return undefined;
  }
}

/**
 * The whole upload is in `upload`: the same checks and digests as the streams make, in memory.
 * Undefined when it has to stream after all (its NAR is not small, or a codec has no one-shot form).
 */
async function ingestSmall(upload: Buffer, opts: IngestOptions): Promise<Ingested | undefined> {
  const decompress = decompressSync[opts.input];
  const keepAsSent = opts.input === opts.stored.type;
  if ((decompress === undefined && opts.input !== "xz") || (!keepAsSent && opts.stored.type === "xz")) return undefined;
  if (opts.maxUploadBytes !== undefined && upload.length > opts.maxUploadBytes) throw tooLarge(opts.maxUploadBytes);
  const maxOutputLength = Math.min(SMALL_NAR_BYTES, opts.maxNarBytes ?? SMALL_NAR_BYTES);
  let nar: Buffer;
  if (decompress === undefined) {
    const decoded = await decodeSmallXz(upload, maxOutputLength);
    if (decoded === undefined) return undefined;
    nar = decoded;
  } else {
    try {
      nar = decompress(upload, { maxOutputLength });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return undefined;
      throw badRequest(`the upload does not decompress: ${(e as Error).message}`);
    }
  }
  const listing = new NarListing();
  const parser = new NarParser(listing);
  try {
    parser.push(nar);
    parser.end();
  } catch (e) {
    throw ingestError(e, new FailureOrigin());
  }
  const bytes = keepAsSent ? upload : await compressSmall(nar, opts.stored);
  if (bytes === undefined) return undefined;
  const digest = (b: Buffer): Digest => ({ sha256: createHash("sha256").update(b).digest(), size: b.length });
  const uploaded = digest(upload);
  return {
    upload: uploaded,
    nar: nar === upload ? uploaded : digest(nar),
    file: bytes === upload ? uploaded : digest(bytes),
    content: { bytes },
    compression: opts.stored.type,
    listing: listing.result(),
  };
}

export async function ingest(opts: IngestOptions): Promise<Ingested> {
  const inMemoryBelow = opts.inMemoryBelow ?? SMALL_UPLOAD_BYTES;
  if (inMemoryBelow > 0) {
    // Reads up to one byte past the limit: a body that ended before it is small.
    const peeked = await peekHead(opts.body, inMemoryBelow + 1);
    if (peeked.head.length <= inMemoryBelow) {
      const small = await ingestSmall(peeked.head, opts);
      if (small) return small;
    }
    return ingestStreaming({ ...opts, body: peeked.body });
  }
  return ingestStreaming(opts);
}

/**
 * The request body as a stream the ingest may destroy. A failed pipeline destroys every stream
 * in it, and destroying an unfinished request destroys its socket, so the 4xx or 413 that says
 * why would never reach the client; the request itself is left to the server to answer and
 * settle (http/unread-body.ts).
 */
function detached(req: Readable): Readable {
  const body = new PassThrough({ highWaterMark: 1 << 16 });
  req.on("error", (e) => body.destroy(e));
  // A request whose connection drops may close without an error.
  req.on("close", () => {
    if (!req.readableEnded) body.destroy(clientGone());
  });
  req.pipe(body);
  return body;
}

async function ingestStreaming(opts: IngestOptions): Promise<Ingested> {
  const spoolPath = join(opts.spoolDir, spoolFileName());
  const listing = new NarListing();
  const parser = new NarParser(listing);
  const uploadTap = new Tap(opts.maxUploadBytes);
  const narTap = new Tap(opts.maxNarBytes, (c) => parser.push(c), narTooLarge);
  const keepAsSent = opts.input === opts.stored.type;
  const origin = new FailureOrigin();
  const body = detached(origin.watch(opts.body, "body"));
  const spool = origin.watch(createWriteStream(spoolPath, { highWaterMark: 1 << 20 }), "spool");
  try {
    if (keepAsSent) {
      // Two branches read the same upload: the spool gets the bytes, the decompressor proves them.
      const decomp = origin.watch(decompressor(opts.input), "decode");
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
      const spooling = opts.syncBehind ? pipeline(body, uploadTap, forward, new SyncBehind(spool), spool) : pipeline(body, uploadTap, forward, spool);
      // If either branch fails the other must not wait for data that never comes.
      spooling.catch((e) => decomp.destroy(e as Error));
      proving.catch((e) => forward.destroy(e as Error));
      // The decompressor may end its output and only then fail on what follows (zstd on bytes
      // after the last frame): `proving` has resolved by then, and `forward`, waiting for a
      // drain that never comes, would hold the upload open forever.
      decomp.once("error", (e) => forward.destroy(e));
      await Promise.all([spooling, proving]);
      parser.end();
      const upload = uploadTap.digest();
      return { upload, nar: narTap.digest(), file: upload, content: { spoolPath }, compression: opts.stored.type, listing: listing.result() };
    }
    const fileTap = new Tap();
    const head = [body, uploadTap, origin.watch(decompressor(opts.input), "decode"), narTap, compressor(opts.stored.type, opts.stored.level), fileTap] as const;
    await (opts.syncBehind ? pipeline(...head, new SyncBehind(spool), spool) : pipeline(...head, spool));
    parser.end();
    return { upload: uploadTap.digest(), nar: narTap.digest(), file: fileTap.digest(), content: { spoolPath }, compression: opts.stored.type, listing: listing.result() };
  } catch (e) {
    await closed(spool);
    await removeSpool(spoolPath).catch(() => {});
    throw ingestError(e, origin);
  }
}
