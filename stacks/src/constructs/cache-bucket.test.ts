import { describe, expect, it } from "vitest";
import { Testing } from "cdktf";
import { CacheBucket } from "./cache-bucket.ts";
import { PrivateBucket } from "./private-bucket.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

describe("CacheBucket", () => {
  const tf = synthScope((scope) => {
    new CacheBucket(scope, "cache", { deploymentName: "t", deletedObjectRetentionDays: 9 });
  });

  it("lets AWS complete a unique name from the deployment's prefix, and never force-destroys", () => {
    expect(one(tf, "aws_s3_bucket")).toMatchObject({ bucket_prefix: "larder-t-", force_destroy: false });
    expect(one(tf, "aws_s3_bucket")["bucket"]).toBeUndefined();
  });

  it("blocks public access and disables ACLs", () => {
    expect(Testing.toHaveResourceWithProperties(JSON.stringify(tf), "aws_s3_bucket_public_access_block", {
      block_public_acls: true, block_public_policy: true, ignore_public_acls: true, restrict_public_buckets: true,
    })).toBe(true);
    expect(one(tf, "aws_s3_bucket_ownership_controls")["rule"]).toEqual({ object_ownership: "BucketOwnerEnforced" });
  });

  it("encrypts by default", () => {
    expect(one(tf, "aws_s3_bucket_server_side_encryption_configuration")["rule"]).toEqual([
      { apply_server_side_encryption_by_default: { sse_algorithm: "AES256" }, bucket_key_enabled: true },
    ]);
  });

  it("denies every request made without TLS", () => {
    const statement = (one(tf, "aws_iam_policy_document", "data")["statement"] as Record<string, unknown>[])[0];
    expect(statement).toMatchObject({ effect: "Deny", actions: ["s3:*"], condition: [{ test: "Bool", variable: "aws:SecureTransport", values: ["false"] }] });
    expect(String(one(tf, "aws_s3_bucket_policy")["policy"])).toMatch(/^\$\{data\.aws_iam_policy_document\..*\.json\}$/);
  });

  it("aborts incomplete multipart uploads and expires deleted versions", () => {
    const rules = one(tf, "aws_s3_bucket_lifecycle_configuration")["rule"] as Record<string, unknown>[];
    expect(rules[0]).toMatchObject({ status: "Enabled", filter: [{}], abort_incomplete_multipart_upload: [{ days_after_initiation: 1 }] });
    expect(rules[1]).toMatchObject({ status: "Enabled", noncurrent_version_expiration: [{ noncurrent_days: 9 }] });
    expect(one(tf, "aws_s3_bucket_versioning")["versioning_configuration"]).toEqual({ status: "Enabled" });
  });
});

describe("PrivateBucket", () => {
  it("takes exactly one of a name and a prefix", () => {
    expect(() => synthScope((scope) => new PrivateBucket(scope, "b", { versioned: false }))).toThrow(/exactly one of bucket and bucketPrefix/);
  });

  it("can protect a fixed-name bucket from destroy and skip versioning", () => {
    const tf = synthScope((scope) => new PrivateBucket(scope, "b", { bucket: "fixed-name", versioned: false, preventDestroy: true }));
    expect(one(tf, "aws_s3_bucket")).toMatchObject({ bucket: "fixed-name", lifecycle: { prevent_destroy: true } });
    expect(all(tf, "aws_s3_bucket_versioning")).toHaveLength(0);
  });
});
