import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { Readable } from "node:stream";
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

const PART_SIZE = 8 * 1024 * 1024;
// Bounds memory to about (QUEUE_SIZE + 1) parts per upload, unlike attic's unbounded part fan-out.
const QUEUE_SIZE = 4;

export interface S3StorageOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: S3Credentials;
  /** Keys live under `<prefix>/` inside the bucket. */
  prefix?: string;
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
  const client = new S3Client(config);

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

  return {
    async put(key: string, body: Readable): Promise<StoredObject> {
      assertValidKey(key);
      const fullKey = base + key;
      let size = 0;
      let bodyError: unknown;
      const counted = Readable.from(
        (async function* () {
          try {
            for await (const chunk of body) {
              const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
              size += buf.length;
              yield buf;
            }
          } catch (err) {
            bodyError ??= err;
            throw err;
          }
        })(),
        { objectMode: false },
      );
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: fullKey, Body: counted },
        queueSize: QUEUE_SIZE,
        partSize: PART_SIZE,
        // Abort the multipart upload on any failure, so no parts linger (and nothing becomes visible).
        leavePartsOnError: false,
      });
      try {
        await upload.done();
      } catch (err) {
        if (!body.destroyed) body.destroy();
        if (bodyError !== undefined) throw bodyError;
        throw fail("put", fullKey, err);
      }
      return { size };
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
        return res.Body;
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
      if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > 7 * 24 * 3600) {
        throw new StorageError(`presign expiry must be 1 to 604800 seconds, got ${expiresInSeconds}`);
      }
      const fullKey = base + key;
      try {
        return await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: fullKey }), {
          expiresIn: expiresInSeconds,
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
