// An S3 bucket that cannot be made public by accident: public access blocked, ACLs disabled
// (owner enforced), encrypted at rest, reachable over TLS only, and incomplete multipart uploads
// cleaned up. Both the cache bucket and the Terraform state bucket are built on it.
import { Construct } from "constructs";
import { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket/index.js";
import { S3BucketPublicAccessBlock } from "@cdktf/provider-aws/lib/s3-bucket-public-access-block/index.js";
import { S3BucketOwnershipControls } from "@cdktf/provider-aws/lib/s3-bucket-ownership-controls/index.js";
import { S3BucketServerSideEncryptionConfigurationA } from "@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration/index.js";
import { S3BucketPolicy } from "@cdktf/provider-aws/lib/s3-bucket-policy/index.js";
import { S3BucketVersioningA } from "@cdktf/provider-aws/lib/s3-bucket-versioning/index.js";
import { S3BucketLifecycleConfiguration } from "@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration/index.js";
import type { S3BucketLifecycleConfigurationRule } from "@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration/index.js";
import { DataAwsIamPolicyDocument } from "@cdktf/provider-aws/lib/data-aws-iam-policy-document/index.js";
import type { DataAwsIamPolicyDocumentStatement } from "@cdktf/provider-aws/lib/data-aws-iam-policy-document/index.js";

export interface PrivateBucketProps {
  /** A fixed name (the state bucket, which the backend must know at synth time)… */
  readonly bucket?: string;
  /** …or a prefix AWS completes to a globally unique name (the cache bucket: no hand editing). */
  readonly bucketPrefix?: string;
  readonly versioned: boolean;
  /** Extra lifecycle rules beside the multipart cleanup. */
  readonly lifecycleRules?: readonly S3BucketLifecycleConfigurationRule[];
  /** Protect the bucket from `terraform destroy` (the state bucket). */
  readonly preventDestroy?: boolean;
}

/** Parts of an upload that never completes are billed until removed; a day is far longer than any push. */
export const ABORT_INCOMPLETE_MULTIPART_DAYS = 1;

export class PrivateBucket extends Construct {
  readonly bucket: S3Bucket;
  /** The bucket's one policy (S3 keeps one per bucket): the TLS-only denial, then any grants. */
  private readonly policyDocument: DataAwsIamPolicyDocument;
  private readonly statements: DataAwsIamPolicyDocumentStatement[];

  constructor(scope: Construct, id: string, props: PrivateBucketProps) {
    super(scope, id);
    if ((props.bucket === undefined) === (props.bucketPrefix === undefined)) {
      throw new Error(`PrivateBucket ${id}: give exactly one of bucket and bucketPrefix`);
    }
    this.bucket = new S3Bucket(this, "bucket", {
      bucket: props.bucket,
      bucketPrefix: props.bucketPrefix,
      // Deleting a bucket with a whole cache (or the state) in it must be a deliberate manual step.
      forceDestroy: false,
      lifecycle: props.preventDestroy === true ? { preventDestroy: true } : undefined,
    });
    const bucket = this.bucket.id;

    new S3BucketPublicAccessBlock(this, "public-access-block", {
      bucket,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    new S3BucketOwnershipControls(this, "ownership", {
      bucket,
      rule: { objectOwnership: "BucketOwnerEnforced" },
    });
    // SSE-S3 rather than KMS: a cache serves many small GETs, and SSE-KMS would add a KMS request
    // (and its cost and rate limit) to each one for no gain in who can read the data.
    new S3BucketServerSideEncryptionConfigurationA(this, "encryption", {
      bucket,
      rule: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }],
    });
    this.statements = [
      {
        sid: "DenyInsecureTransport",
        effect: "Deny",
        principals: [{ type: "*", identifiers: ["*"] }],
        actions: ["s3:*"],
        resources: [this.bucket.arn, `${this.bucket.arn}/*`],
        condition: [{ test: "Bool", variable: "aws:SecureTransport", values: ["false"] }],
      },
    ];
    this.policyDocument = new DataAwsIamPolicyDocument(this, "tls-only", { statement: this.statements });
    new S3BucketPolicy(this, "policy", { bucket, policy: this.policyDocument.json });
    if (props.versioned) {
      new S3BucketVersioningA(this, "versioning", { bucket, versioningConfiguration: { status: "Enabled" } });
    }
    new S3BucketLifecycleConfiguration(this, "lifecycle", {
      bucket,
      rule: [
        {
          id: "abort-incomplete-multipart-uploads",
          status: "Enabled",
          filter: [{}],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: ABORT_INCOMPLETE_MULTIPART_DAYS }],
        },
        ...(props.lifecycleRules ?? []),
      ],
    });
  }

  /** Adds a statement to the bucket's policy (e.g. a CDN's read grant); the public access block still applies. */
  grant(statement: DataAwsIamPolicyDocumentStatement): void {
    this.statements.push(statement);
    this.policyDocument.putStatement([...this.statements]);
  }
}
