import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Storage, createStorage, StorageError, StorageNotFoundError } from "../src/storage/index.ts";
import { describeStorageContract } from "./storage-contract.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";

describeStorageContract(
  "s3 (s3rver)",
  async () => {
    const s3 = await startS3rver();
    return { storage: await createStorage(s3.storageConfig), cleanup: s3.stop };
  },
  // s3rver writes objects in place; the race between different bodies is S3's guarantee, not the emulator's.
  { presigns: true, atomicOverwrite: false },
);

describeStorageContract(
  "s3 (s3rver) with a key prefix",
  async () => {
    const s3 = await startS3rver({ bucket: "nix-cache" });
    if (s3.storageConfig.type !== "s3") throw new Error("startS3rver must give an s3 storage config");
    return { storage: await createStorage({ ...s3.storageConfig, prefix: "caches/main" }), cleanup: s3.stop };
  },
  // s3rver writes objects in place; the race between different bodies is S3's guarantee, not the emulator's.
  { presigns: true, atomicOverwrite: false },
);

describe("s3 storage specifics", () => {
  let s3: S3rverHandle;
  beforeAll(async () => {
    s3 = await startS3rver({ bucket: "specifics" });
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it("stores prefixed keys under the prefix and lists them without it", async () => {
    const base = { bucket: s3.bucket, region: s3.region, endpoint: s3.endpoint, credentials: s3.credentials };
    const whole = await createS3Storage(base);
    const prefixed = await createS3Storage({ ...base, prefix: "tenant-a/" });
    await prefixed.put("nar/x.nar", Readable.from([Buffer.from("hello")]));
    expect(await whole.head("tenant-a/nar/x.nar")).toEqual({ size: 5 });
    const listed: string[] = [];
    for await (const e of prefixed.list()) listed.push(e.key);
    expect(listed).toEqual(["nar/x.nar"]);
    await expect(createS3Storage({ ...base, prefix: "../up" })).rejects.toBeInstanceOf(StorageError);
  });

  it("wraps SDK errors with the operation, bucket, key and error name, never the credentials", async () => {
    // s3rver does not verify SigV4 signatures, but it does reject unknown access key ids.
    const credentials = { accessKeyId: "AKIANOTAREALKEY12345", secretAccessKey: "wrong-secret-do-not-print-0123456789" };
    const storage = await createS3Storage({ bucket: s3.bucket, region: s3.region, endpoint: s3.endpoint, credentials });
    const failures = [
      await storage.put("nar/some.nar", Readable.from([Buffer.from("x")])).catch((e: unknown) => e),
      await storage.get("nar/some.nar").catch((e: unknown) => e),
      await storage.head("nar/some.nar").catch((e: unknown) => e),
      await storage.delete("nar/some.nar").catch((e: unknown) => e),
      await storage.check().catch((e: unknown) => e),
    ];
    for (const err of failures) {
      expect(err).toBeInstanceOf(StorageError);
      expect(err).not.toBeInstanceOf(StorageNotFoundError);
      const text = `${(err as Error).message} ${(err as Error).stack} ${JSON.stringify(err)}`;
      expect(text).not.toContain(credentials.secretAccessKey);
      expect(text).not.toContain(credentials.accessKeyId);
    }
    const put = (failures[0] as Error).message;
    expect(put).toContain(`S3 put s3://${s3.bucket}/nar/some.nar failed: InvalidAccessKeyId (HTTP 403)`);
  });

  it("check() reports a missing bucket, and a missing bucket is not a missing object", async () => {
    const storage = await createS3Storage({
      bucket: "no-such-bucket",
      region: s3.region,
      endpoint: s3.endpoint,
      credentials: s3.credentials,
    });
    await expect(storage.check()).rejects.toThrow(/S3 check s3:\/\/no-such-bucket failed/);
    const get = await storage.get("k").catch((e: unknown) => e);
    expect(get).toBeInstanceOf(StorageError);
    expect(get).not.toBeInstanceOf(StorageNotFoundError);
    await expect(storage.delete("k")).rejects.toBeInstanceOf(StorageError);
  });

  it("check() fails when the endpoint is unreachable", async () => {
    const storage = await createS3Storage({
      bucket: s3.bucket,
      region: s3.region,
      endpoint: "http://127.0.0.1:1",
      credentials: s3.credentials,
    });
    await expect(storage.check()).rejects.toBeInstanceOf(StorageError);
  });
});
