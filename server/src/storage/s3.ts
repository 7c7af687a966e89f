import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { Readable, Transform } from "node:stream";
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  StorageError,
  StorageNotFoundError,
  StorageRangeError,
  type ByteRange,
  type S3Credentials,
  type Storage,
  type StoredObject,
} from "./types.ts";
import { putFromFile } from "./file.ts";

const PART_SIZE = 8 * 1024 * 1024;
// Parts uploading at once. Memory per put is (QUEUE_SIZE + 1) part buffers, reused from part to part; attic
// instead fans out every part at once.
const QUEUE_SIZE = 4;
const MAX_PARTS = 10_000;

// Part buffers are recycled across puts: fresh 8 MiB buffers per part would leave tens of MiB of garbage per
// upload for the collector to find later, so memory would track upload volume rather than concurrency.
const sparePartBuffers: Buffer[] = [];
const takePartBuffer = (): Buffer => sparePartBuffers.pop() ?? Buffer.allocUnsafe(PART_SIZE);
const releasePartBuffers = (buffers: Buffer[]): void => {
  for (const b of buffers) if (sparePartBuffers.length < QUEUE_SIZE + 1) sparePartBuffers.push(b);
};

export interface S3StorageOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: S3Credentials;
  /** Keys live under `<prefix>/` inside the bucket. */
  prefix?: string;
}

function checkExpiry(expiresInSeconds: number): void {
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > 7 * 24 * 3600) {
    throw new StorageError(`presign expiry must be 1 to 604800 seconds, got ${expiresInSeconds}`);
  }
}

/** The SDK client settings for a bucket; shared with the bucket layout (bucket/target.ts), which writes keys storage does not. */
export function s3ClientConfig(opts: Pick<S3StorageOptions, "region" | "endpoint" | "forcePathStyle" | "credentials">): S3ClientConfig {
  const config: S3ClientConfig = {
    region: opts.region,
    // Only compute/validate checksums when S3 demands them: the default aws-chunked stream framing is stored
    // verbatim by some S3-compatible servers (s3rver among them), corrupting the object.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
  if (opts.endpoint !== undefined) {
    config.endpoint = opts.endpoint;
    // Custom endpoints (MinIO, R2, s3rver, …) rarely have wildcard DNS for virtual-hosted buckets.
    config.forcePathStyle = opts.forcePathStyle ?? true;
  } else if (opts.forcePathStyle !== undefined) {
    config.forcePathStyle = opts.forcePathStyle;
  }
  if (opts.credentials) config.credentials = { ...opts.credentials };
  return config;
}

export async function createS3Storage(opts: S3StorageOptions): Promise<Storage> {
  const { bucket } = opts;
  if (!bucket) throw new StorageError("S3 storage: bucket is empty; set storage.bucket");
  if (!opts.region) throw new StorageError("S3 storage: region is empty; set storage.region");
  let base = "";
  if (opts.prefix !== undefined && opts.prefix !== "") {
    const trimmed = opts.prefix.replace(/\/+$/, "");
    try {
      assertValidKey(trimmed);
    } catch {
      throw new StorageError(`S3 storage: invalid prefix ${JSON.stringify(opts.prefix)}; use [a-z0-9._-] segments`);
    }
    base = `${trimmed}/`;
  }

  const client = new S3Client(s3ClientConfig(opts));

  const secrets = [opts.credentials?.accessKeyId, opts.credentials?.secretAccessKey, opts.credentials?.sessionToken]
    .filter((s): s is string => typeof s === "string" && s.length > 0);
  const fail = (op: string, key: string, err: unknown): StorageError => {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } } | undefined;
    const status = e?.$metadata?.httpStatusCode;
    let detail = typeof e?.message === "string" ? e.message : String(err);
    for (const s of secrets) detail = detail.split(s).join("[redacted]");
    const where = key === "" ? `s3://${bucket}` : `s3://${bucket}/${key}`;
    // No `cause`: SDK errors carry request metadata that a logger could serialize.
    return new StorageError(
      `S3 ${op} ${where} failed: ${e?.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}: ${detail}`,
    );
  };

  const storage: Storage = {
    async put(key: string, body: Readable): Promise<StoredObject> {
      assertValidKey(key);
      const fullKey = base + key;
      try {
        return { size: await putStream(client, bucket, fullKey, body) };
      } catch (err) {
        if (err instanceof BodyError) throw err.original;
        if (err instanceof StorageError) throw err;
        throw fail("put", fullKey, err);
      }
    },

    async putFile(key: string, path: string): Promise<StoredObject> {
      assertValidKey(key);
      try {
        return await putFromFile(storage.put, key, path);
      } catch (err) {
        if (err instanceof StorageError) throw err;
        throw new StorageError(`S3 put s3://${bucket}/${base + key} failed: cannot read ${path}: ${(err as Error).message}`);
      }
    },

    async get(key: string, range?: ByteRange): Promise<Readable> {
      assertValidKey(key);
      assertValidRange(key, range);
      const fullKey = base + key;
      const Range = range === undefined ? undefined : `bytes=${range.start}-${range.end ?? ""}`;
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: fullKey, Range }));
        if (!(res.Body instanceof Readable)) {
          throw new StorageError(`S3 get s3://${bucket}/${fullKey} returned no readable body`);
        }
        return range === undefined ? res.Body : exactRange(res.Body, res.ContentRange, res.ContentLength, range, fullKey);
      } catch (err) {
        if (err instanceof StorageError) throw err;
        if (isNotFound(err)) throw new StorageNotFoundError(`storage object ${key} not found`);
        if (errorName(err) === "InvalidRange" || statusOf(err) === 416) {
          throw new StorageRangeError(`range start ${range?.start} is past the end of ${key}`);
        }
        throw fail("get", fullKey, err);
      }
    },

    async head(key: string): Promise<StoredObject | null> {
      assertValidKey(key);
      const fullKey = base + key;
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: fullKey }));
        return { size: res.ContentLength ?? 0 };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw fail("head", fullKey, err);
      }
    },

    async delete(key: string): Promise<void> {
      assertValidKey(key);
      const fullKey = base + key;
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey }));
      } catch (err) {
        if (isNotFound(err)) return;
        throw fail("delete", fullKey, err);
      }
    },

    async presignGet(key: string, expiresInSeconds: number): Promise<string | null> {
      assertValidKey(key);
      checkExpiry(expiresInSeconds);
      const fullKey = base + key;
      try {
        return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: fullKey }), {
          expiresIn: expiresInSeconds,
        });
      } catch (err) {
        throw fail("presign", fullKey, err);
      }
    },

    async presignPut(key: string, expiresInSeconds: number, contentMd5?: string): Promise<string> {
      assertValidKey(key);
      checkExpiry(expiresInSeconds);
      const fullKey = base + key;
      try {
        // Content-MD5 becomes a signed header: a PUT without it, or with another, is refused by S3.
        return await getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: fullKey, ...(contentMd5 !== undefined && { ContentMD5: contentMd5 }) }), {
          expiresIn: expiresInSeconds,
          ...(contentMd5 !== undefined && { signableHeaders: new Set(["content-md5"]) }),
        });
      } catch (err) {
        throw fail("presign", fullKey, err);
      }
    },

    async *list(prefix = ""): AsyncIterable<{ key: string; size: number }> {
      assertValidPrefix(prefix);
      try {
        for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: base + prefix })) {
          for (const obj of page.Contents ?? []) {
            if (obj.Key === undefined || !obj.Key.startsWith(base)) continue;
            yield { key: obj.Key.slice(base.length), size: obj.Size ?? 0 };
          }
        }
      } catch (err) {
        throw fail("list", base + prefix, err);
      }
    },

    async check(): Promise<void> {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (err) {
        throw fail("check", "", err);
      }
    },
  };
  return storage;
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: string } | undefined)?.name;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  // A missing bucket is a configuration error, not a missing object.
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || statusOf(err) === 404;
}

function toBuffer(chunk: Buffer | Uint8Array | string): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Marks an error that came from the caller's body stream, so put() rethrows it unwrapped. */
class BodyError extends Error {
  readonly original: unknown;
  constructor(original: unknown) {
    super("body stream failed");
    this.original = original;
  }
}

/**
 * Streams `body` to S3: one PutObject when it fits in a part, else a multipart upload with QUEUE_SIZE parts in
 * flight, aborted on any failure so nothing becomes visible. Written by hand rather than with lib-storage's
 * Upload, because Upload re-concatenates every part from the incoming chunks and keeps those copies pinned:
 * a 200 MiB put peaked at 100-160 MiB of buffers with it; fixed, recycled part buffers hold that to ~40 MiB.
 */
export async function putStream(client: S3Client, bucket: string, key: string, body: Readable, contentType?: string): Promise<number> {
  const iterator = (body as AsyncIterable<Buffer | Uint8Array | string>)[Symbol.asyncIterator]();
  let pending: Buffer | null = null;
  let ended = false;

  // Reads the next non-empty chunk into `pending`; false at the end of the body.
  const pull = async (): Promise<boolean> => {
    while (pending === null && !ended) {
      let next: IteratorResult<Buffer | Uint8Array | string>;
      try {
        next = await iterator.next();
      } catch (err) {
        throw new BodyError(err);
      }
      if (next.done) ended = true;
      else if (next.value.length > 0) pending = toBuffer(next.value);
    }
    return pending !== null;
  };
  const fill = async (buf: Buffer): Promise<number> => {
    let n = 0;
    while (n < buf.length && (await pull())) {
      const chunk: Buffer = pending!;
      const take = Math.min(chunk.length, buf.length - n);
      chunk.copy(buf, n, 0, take);
      n += take;
      pending = take < chunk.length ? chunk.subarray(take) : null;
    }
    return n;
  };

  // Every buffer this put took; all are idle again once putStream settles (in-flight parts are awaited).
  const owned: Buffer[] = [];
  const take = (): Buffer => {
    const b = takePartBuffer();
    owned.push(b);
    return b;
  };
  try {
    const first = take();
    let length = await fill(first);
    if (length < PART_SIZE || !(await pull())) {
      await client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: first.subarray(0, length), ContentLength: length, ContentType: contentType }),
      );
      return length;
    }

    const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType }));
    const uploadId = created.UploadId;
    if (!uploadId) throw new StorageError(`S3 put s3://${bucket}/${key} failed: no UploadId in the response`);
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    const spare: Buffer[] = [];
    let failure: { error: unknown } | undefined;
    let size = 0;
    try {
      let buf: Buffer = first;
      for (let partNumber = 1; ; partNumber++) {
        if (partNumber > MAX_PARTS) {
          throw new StorageError(`S3 put s3://${bucket}/${key} failed: object exceeds ${MAX_PARTS} parts of ${PART_SIZE} bytes`);
        }
        size += length;
        const part = buf;
        const upload: Promise<void> = client
          .send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: part.subarray(0, length),
              ContentLength: length,
            }),
          )
          .then(
            (res) => {
              parts.push({ PartNumber: partNumber, ETag: res.ETag });
              spare.push(part);
            },
            (error: unknown) => {
              failure ??= { error };
            },
          )
          .finally(() => inFlight.delete(upload));
        inFlight.add(upload);
        if (!(await pull())) break;
        while (inFlight.size >= QUEUE_SIZE && failure === undefined) await Promise.race(inFlight);
        if (failure !== undefined) throw failure.error;
        buf = spare.pop() ?? take();
        length = await fill(buf);
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure.error;
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await client.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
      return size;
    } catch (err) {
      // Let running part uploads settle first: a part landing after the abort would be stored (and billed).
      await Promise.allSettled(inFlight);
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => {
          // The original error matters more; S3 lifecycle rules clean up uploads whose abort failed.
        });
      throw err;
    }
  } catch (err) {
    if (!ended) await iterator.return?.().catch(() => {});
    throw err;
  } finally {
    releasePartBuffers(owned);
  }
}

/**
 * Some S3-compatible servers ignore Range or answer a different one (s3rver turns "bytes=0-0" into the whole
 * object). Trim what came back to exactly the bytes asked for, or fail if it does not cover them.
 */
function exactRange(
  body: Readable,
  contentRange: string | undefined,
  contentLength: number | undefined,
  range: ByteRange,
  key: string,
): Readable {
  const m = contentRange === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
  let first: number;
  let last: number;
  if (m) {
    first = Number(m[1]);
    last = Number(m[2]);
  } else if (contentRange === undefined && contentLength !== undefined) {
    // A 200 with the whole object.
    first = 0;
    last = contentLength - 1;
  } else {
    body.destroy();
    throw new StorageError(`S3 get ${key}: unexpected Content-Range ${JSON.stringify(contentRange)}`);
  }
  const wantEnd = Math.min(range.end ?? last, last);
  if (first === range.start && last === wantEnd) return body;
  if (first > range.start || last < wantEnd) {
    body.destroy();
    throw new StorageError(`S3 get ${key}: server sent bytes ${first}-${last} for a request of ${range.start}-${range.end ?? ""}`);
  }
  let skip = range.start - first;
  let remaining = wantEnd - range.start + 1;
  const trim = new Transform({
    transform(chunk: Buffer, _enc, done) {
      let piece: Buffer<ArrayBufferLike> = chunk;
      if (skip > 0) {
        const n = Math.min(skip, piece.length);
        skip -= n;
        piece = piece.subarray(n);
      }
      if (remaining > 0 && piece.length > 0) {
        const out = piece.subarray(0, Math.min(remaining, piece.length));
        remaining -= out.length;
        this.push(out);
      }
      if (remaining === 0) {
        this.push(null);
        body.destroy();
      }
      done();
    },
  });
  body.on("error", (err) => trim.destroy(err));
  return body.pipe(trim);
}
