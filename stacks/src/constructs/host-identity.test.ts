import { describe, expect, it } from "vitest";
import { HostIdentity } from "./host-identity.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

function build(adminCidrs: string[], netrcSecretArn?: string) {
  return synthScope((scope) => {
    new HostIdentity(scope, "identity", {
      deploymentName: "t",
      vpcId: "vpc-1",
      bucketArn: "arn:aws:s3:::larder-t-bucket",
      tokenSecretArn: "arn:token",
      databaseSecretArn: "arn:database",
      netrcSecretArn,
      metricsNamespace: "Larder",
      adminCidrs,
    });
  });
}

function statements(tf: ReturnType<typeof build>) {
  const access = all(tf, "aws_iam_policy_document", "data").find((d) => JSON.stringify(d).includes("s3:GetObject"));
  return (access?.["statement"] ?? []) as { sid: string; actions: string[]; resources: string[]; condition?: unknown }[];
}

describe("HostIdentity", () => {
  it("lets EC2 assume the role", () => {
    const tf = build([]);
    const assume = all(tf, "aws_iam_policy_document", "data").find((d) => JSON.stringify(d).includes("sts:AssumeRole"));
    expect(assume?.["statement"]).toEqual([{ actions: ["sts:AssumeRole"], principals: [{ type: "Service", identifiers: ["ec2.amazonaws.com"] }] }]);
  });

  it("grants S3 on the cache bucket only", () => {
    const s3 = statements(build([])).filter((s) => s.actions.some((a) => a.startsWith("s3:")));
    expect(s3.map((s) => s.resources)).toEqual([["arn:aws:s3:::larder-t-bucket"], ["arn:aws:s3:::larder-t-bucket/*"]]);
    expect(s3.flatMap((s) => s.actions)).not.toContain("s3:*");
  });

  it("reads the two secrets and can change neither", () => {
    const secrets = statements(build([])).filter((s) => s.actions.some((a) => a.startsWith("secretsmanager:")));
    expect(secrets).toEqual([
      { sid: "ReadServerSecrets", actions: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], resources: ["arn:token", "arn:database"] },
    ]);
  });

  it("also reads the netrc secret of a private source, when there is one", () => {
    const secrets = statements(build([], "arn:netrc")).find((s) => s.sid === "ReadServerSecrets");
    expect(secrets?.resources).toEqual(["arn:token", "arn:database", "arn:netrc"]);
  });

  it("gives Session Manager its own actions only: no managed SSM policy, no parameter or document reads", () => {
    const tf = build([]);
    expect(all(tf, "aws_iam_role_policy_attachment")).toHaveLength(0);
    const actions = statements(tf).flatMap((s) => s.actions);
    expect(actions).toEqual(expect.arrayContaining(["ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel", "ssmmessages:CreateControlChannel", "ec2messages:GetMessages"]));
    expect(actions.filter((a) => a.startsWith("ssm:"))).toEqual(["ssm:UpdateInstanceInformation"]);
  });

  it("publishes metrics to the hosts' own namespace only", () => {
    const metrics = statements(build([])).find((s) => s.actions.includes("cloudwatch:PutMetricData"));
    expect(metrics?.actions).toEqual(["cloudwatch:PutMetricData"]);
    expect(metrics?.condition).toEqual([{ test: "StringEquals", variable: "cloudwatch:namespace", values: ["Larder"] }]);
  });

  it("opens no SSH by default", () => {
    expect(all(build([]), "aws_vpc_security_group_ingress_rule")).toHaveLength(0);
  });

  it("opens SSH to each admin CIDR, IPv4 and IPv6", () => {
    const rules = all(build(["203.0.113.0/24", "2001:db8::/48"]), "aws_vpc_security_group_ingress_rule");
    expect(rules.map((r) => [r["from_port"], r["to_port"], r["cidr_ipv4"] ?? r["cidr_ipv6"]])).toEqual([
      [22, 22, "203.0.113.0/24"],
      [22, 22, "2001:db8::/48"],
    ]);
  });
});
