/**
 * The bucket a layout is written to. Not a Storage backend: layout keys are Nix's names (cache
 * names with capitals, derivation names, `sha256:…!out.doi`), which storage keys never are, and
 * the layout needs a server-side copy and a batched delete that storage does not.
 */
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { Readable } from "node:stream";
import type { BucketTarget } from "../config/load.ts";
import { putStream, s3ClientConfig } from "../storage/s3.ts";
import { StorageError } from "../storage/types.ts";

/** CopyObject takes objects up to 5 GiB; bigger NARs are streamed through larderd instead. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000;

export interface LayoutTarget {
  readonly bucket: string;
  putText(key: string, text: string | Buffer, contentType: string): Promise<void>;
  putStream(key: string, body: Readable, contentType?: string): Promise<number>;
  /** Server-side copy of `source` (a key of `sourceBucket`, reachable with this target's client); false when it cannot be done that way. */
  copy(sourceBucket: string, source: string, key: string, size: number): Promise<boolean>;
  /** Deletes the keys (missing ones count as deleted), in batches; throws if any failed. */
  deleteMany(keys: readonly string[]): Promise<void>;
  exists(key: string): Promise<boolean>;
  list(prefix: string): AsyncIterable<string>;
}

export function createLayoutTarget(t: BucketTarget): LayoutTarget {
  const client = new S3Client(s3ClientConfig(t));
  const { bucket } = t;
  // SDK messages can carry request details; only the operation, key, error name and status are kept.
  const fail = (op: string, key: string, err: unknown): StorageError => {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
    const status = e?.$metadata?.httpStatusCode;
    return new StorageError(`bucket layout: S3 ${op} s3://${bucket}/${key} failed: ${e?.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}`);
  };
  return {
    bucket,
    async putText(key, text, contentType) {
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: contentType }));
      } catch (err) {
        throw fail("put", key, err);
      }
    },
    async putStream(key, body, contentType) {
      try {
        return await putStream(client, bucket, key, body, contentType);
      } catch (err) {
        if (err instanceof StorageError) throw err;
        throw fail("put", key, err);
      }
    },
    async copy(sourceBucket, source, key, size) {
      if (size > MAX_COPY_BYTES) return false;
      try {
        await client.send(new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: `${sourceBucket}/${source}` }));
        return true;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        // Not allowed to read the source (other credentials) or it is elsewhere: the caller streams.
        if (status === 403 || status === 404 || status === 400) return false;
        throw fail("copy", key, err);
      }
    },
    async deleteMany(keys) {
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const batch = keys.slice(i, i + DELETE_BATCH);
        let errors: { Key?: string; Code?: string }[] | undefined;
        try {
          const res = await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
          errors = res.Errors;
        } catch (err) {
          throw fail("delete", batch[0] ?? "", err);
        }
        const failed = (errors ?? []).filter((e) => e.Code !== "NoSuchKey");
        if (failed.length > 0) throw new StorageError(`bucket layout: S3 delete of ${failed.length} keys failed, e.g. s3://${bucket}/${failed[0]?.Key}: ${failed[0]?.Code}`);
      }
    },
    async exists(key) {
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch (err) {
        const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (e.name === "NotFound" || e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404) return false;
        throw fail("head", key, err);
      }
    },
    async *list(prefix) {
      try {
        for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: prefix })) {
          for (const o of page.Contents ?? []) if (o.Key !== undefined) yield o.Key;
        }
      } catch (err) {
        throw fail("list", prefix, err);
      }
    },
  };
}
