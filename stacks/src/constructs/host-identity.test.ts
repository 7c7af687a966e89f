import { describe, expect, it } from "vitest";
import { HostIdentity } from "./host-identity.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

function build(adminCidrs: string[]) {
  return synthScope((scope) => {
    new HostIdentity(scope, "identity", {
      deploymentName: "t",
      vpcId: "vpc-1",
      bucketArn: "arn:aws:s3:::larder-t-bucket",
      tokenSecretArn: "arn:token",
      databaseSecretArn: "arn:database",
      adminCidrs,
    });
  });
}

function statements(tf: ReturnType<typeof build>) {
  const access = all(tf, "aws_iam_policy_document", "data").find((d) => JSON.stringify(d).includes("s3:GetObject"));
  return (access?.["statement"] ?? []) as { sid: string; actions: string[]; resources: string[] }[];
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

  it("attaches Session Manager instead of needing SSH", () => {
    expect(one(build([]), "aws_iam_role_policy_attachment")["policy_arn"]).toBe("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore");
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
