// Remote state. Every deployment stack keeps its state in S3 with S3-native locking
// (use_lockfile, Terraform ≥ 1.10 and OpenTofu ≥ 1.10; chutney had no lock at all). The bucket itself
// comes from a small bootstrap stack, one per account and region, whose own state is a local file
// kept in stacks/state/ and committed (it holds bucket settings only, no secret): a second run of the
// bootstrap then finds the bucket in its state and changes nothing, on any machine.
import path from "node:path";
import { LocalBackend, S3Backend, TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
import { PrivateBucket } from "./constructs/private-bucket.ts";
import type { Deployment } from "./config.ts";

/** Account and region make the name globally unique, and the backend must know it without a lookup. */
export function stateBucketName(accountId: string, region: string): string {
  return `larder-tfstate-${accountId}-${region}`;
}

export function stateStackName(accountId: string, region: string): string {
  return `larder-state-${accountId}-${region}`;
}

export interface StateBootstrapProps {
  readonly accountId: string;
  readonly region: string;
  /** Where the bootstrap's own state file lives, relative to the stack's synthesized directory. */
  readonly localStatePath: string;
}

export class StateBootstrapStack extends TerraformStack {
  readonly bucketName: string;

  constructor(scope: Construct, id: string, props: StateBootstrapProps) {
    super(scope, id);
    this.bucketName = stateBucketName(props.accountId, props.region);
    new AwsProvider(this, "aws", {
      region: props.region,
      allowedAccountIds: [props.accountId],
      defaultTags: [{ tags: { project: "larder", purpose: "terraform-state" } }],
    });
    new LocalBackend(this, { path: props.localStatePath });
    const state = new PrivateBucket(this, "state", {
      bucket: this.bucketName,
      // Every state write is a new version: a bad apply can be rolled back.
      versioned: true,
      preventDestroy: true,
    });
    new TerraformOutput(this, "bucket", { value: state.bucket.bucket });
  }
}

/** Points a deployment stack at its state object in the bootstrap bucket. */
export function useRemoteState(stack: TerraformStack, deployment: Deployment): void {
  new S3Backend(stack, {
    bucket: stateBucketName(deployment.accountId, deployment.region),
    key: `larder/${deployment.name}/terraform.tfstate`,
    region: deployment.region,
    encrypt: true,
  });
  // cdktf 0.21 predates use_lockfile; the override writes it into the backend block as is.
  stack.addOverride("terraform.backend.s3.use_lockfile", true);
}

/** The bootstrap state file's path as the synthesized stack directory sees it. */
export function relativeStatePath(stackDirectory: string, stateDirectory: string, stackName: string): string {
  return path.relative(stackDirectory, path.join(stateDirectory, `${stackName}.tfstate`));
}
