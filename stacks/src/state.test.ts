import { describe, expect, it } from "vitest";
import { TerraformStack, Testing } from "cdktf";
import { StateBootstrapStack, relativeStatePath, stateBucketName, useRemoteState } from "./state.ts";
import { parseDeployment } from "./config.ts";
import type { DeploymentInput } from "./config.ts";
import type { TerraformJson } from "./policy.ts";
import { one, validInput } from "../test/helpers.ts";

describe("StateBootstrapStack", () => {
  const stack = new StateBootstrapStack(Testing.app(), "state", { accountId: "111122223333", region: "eu-west-1", localStatePath: "../../../stacks/state/state.tfstate" });
  const tf = JSON.parse(Testing.synth(stack)) as TerraformJson;

  it("creates a private, versioned, encrypted state bucket named by account and region", () => {
    expect(one(tf, "aws_s3_bucket")).toMatchObject({ bucket: "larder-tfstate-111122223333-eu-west-1", lifecycle: { prevent_destroy: true } });
    expect(one(tf, "aws_s3_bucket_versioning")["versioning_configuration"]).toEqual({ status: "Enabled" });
    expect(one(tf, "aws_s3_bucket_server_side_encryption_configuration")).toBeDefined();
    expect(one(tf, "aws_s3_bucket_public_access_block")).toMatchObject({ block_public_acls: true, restrict_public_buckets: true });
  });

  it("keeps its own state in the committed local file, so a second run changes nothing", () => {
    expect(tf.terraform?.backend).toEqual({ local: { path: "../../../stacks/state/state.tfstate" } });
  });

  it("only runs against its account", () => {
    expect(Testing.toHaveProviderWithProperties(JSON.stringify(tf), "aws", { allowed_account_ids: ["111122223333"], region: "eu-west-1" })).toBe(true);
  });
});

describe("useRemoteState", () => {
  it("points a deployment at its key in the state bucket, encrypted and lockfile-locked", () => {
    const stack = new TerraformStack(Testing.app(), "deployment");
    useRemoteState(stack, parseDeployment(validInput() as DeploymentInput));
    const tf = JSON.parse(Testing.synth(stack)) as TerraformJson;
    expect(tf.terraform?.backend).toEqual({
      s3: { bucket: stateBucketName("111122223333", "eu-west-1"), key: "larder/test/terraform.tfstate", region: "eu-west-1", encrypt: true, use_lockfile: true },
    });
  });
});

describe("relativeStatePath", () => {
  it("is relative to the synthesized stack directory", () => {
    expect(relativeStatePath("/repo/cdktf.out/stacks/s", "/repo/stacks/state", "s")).toBe("../../../stacks/state/s.tfstate");
  });
});

