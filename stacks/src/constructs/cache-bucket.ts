// The cache's object store: NARs addressed by content. Versioned so an object deleted by mistake
// (or by a GC bug) can be restored for a while; old versions expire so GC still frees space.
import { Construct } from "constructs";
import type { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket/index.js";
import { PrivateBucket } from "./private-bucket.ts";

export interface CacheBucketProps {
  /** The deployment's name; the bucket becomes larder-<name>-<unique suffix chosen by AWS>. */
  readonly deploymentName: string;
  readonly deletedObjectRetentionDays: number;
}

export class CacheBucket extends Construct {
  readonly bucket: S3Bucket;
  /** The bucket with its policy, for grants (the CDN's read access to the public layouts). */
  readonly store: PrivateBucket;

  constructor(scope: Construct, id: string, props: CacheBucketProps) {
    super(scope, id);
    const store = (this.store = new PrivateBucket(this, "store", {
      bucketPrefix: `larder-${props.deploymentName}-`,
      versioned: true,
      lifecycleRules: [
        {
          id: "expire-deleted-objects",
          status: "Enabled",
          filter: [{}],
          noncurrentVersionExpiration: [{ noncurrentDays: props.deletedObjectRetentionDays }],
          expiration: [{ expiredObjectDeleteMarker: true }],
        },
      ],
    }));
    this.bucket = store.bucket;
  }
}
