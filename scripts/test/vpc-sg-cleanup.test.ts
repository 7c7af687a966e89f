/**
 * vpc-sg-cleanup against SDK-level mocks (aws-sdk-client-mock): AWS itself cannot be reached
 * from tests. The fake VPC has a default group, two groups that reference each other, a
 * self-reference, a reference from the default group, and a CIDR rule.
 */
import {
  DeleteSecurityGroupCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupRulesCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  EC2ServiceException,
  RevokeSecurityGroupEgressCommand,
  RevokeSecurityGroupIngressCommand,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../src/vpc-sg-cleanup.ts";

const VPC = "vpc-0a1b2c3d4e5f60718";
const ec2 = mockClient(EC2Client);

function fakeVpc() {
  ec2.reset();
  ec2
    .on(DescribeSecurityGroupsCommand, { Filters: [{ Name: "vpc-id", Values: [VPC] }], NextToken: undefined })
    .resolves({
      SecurityGroups: [
        { GroupId: "sg-000default", GroupName: "default", VpcId: VPC },
        { GroupId: "sg-0aaa", GroupName: "larder-app", VpcId: VPC },
      ],
      NextToken: "page-2",
    })
    .on(DescribeSecurityGroupsCommand, { NextToken: "page-2" })
    .resolves({ SecurityGroups: [{ GroupId: "sg-0bbb", GroupName: "console-made-db", VpcId: VPC }] });
  ec2.on(DescribeSecurityGroupRulesCommand).resolves({
    SecurityGroupRules: [
      { SecurityGroupRuleId: "sgr-a-in-from-b", GroupId: "sg-0aaa", IsEgress: false, ReferencedGroupInfo: { GroupId: "sg-0bbb" } },
      { SecurityGroupRuleId: "sgr-b-in-from-a", GroupId: "sg-0bbb", IsEgress: false, ReferencedGroupInfo: { GroupId: "sg-0aaa" } },
      { SecurityGroupRuleId: "sgr-b-out-to-a", GroupId: "sg-0bbb", IsEgress: true, ReferencedGroupInfo: { GroupId: "sg-0aaa" } },
      { SecurityGroupRuleId: "sgr-a-self", GroupId: "sg-0aaa", IsEgress: false, ReferencedGroupInfo: { GroupId: "sg-0aaa" } },
      { SecurityGroupRuleId: "sgr-default-from-a", GroupId: "sg-000default", IsEgress: false, ReferencedGroupInfo: { GroupId: "sg-0aaa" } },
      { SecurityGroupRuleId: "sgr-a-https", GroupId: "sg-0aaa", IsEgress: false, CidrIpv4: "0.0.0.0/0" },
    ],
  });
  ec2.on(RevokeSecurityGroupIngressCommand).resolves({ Return: true });
  ec2.on(RevokeSecurityGroupEgressCommand).resolves({ Return: true });
  ec2.on(DeleteSecurityGroupCommand).resolves({});
}


async function cleanup(args: string[]) {
  const lines: string[] = [];
  const code = await main(["node", "vpc-sg-cleanup", VPC, "--region", "eu-west-1", ...args], { env: {}, out: (l) => lines.push(l) });
  return { code, lines, text: lines.join("\n") };
}

beforeEach(() => {
  vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "example-secret");
  fakeVpc();
});
afterEach(() => vi.unstubAllEnvs());

describe("vpc-sg-cleanup", () => {
  it("dry run: reports the plan and changes nothing", async () => {
    const r = await cleanup([]);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([
      `VPC ${VPC}: 2 non-default security group(s), 4 cross-reference rule(s)`,
      "  revoke ingress rule sgr-a-in-from-b of sg-0aaa (references sg-0bbb)",
      "  revoke ingress rule sgr-b-in-from-a of sg-0bbb (references sg-0aaa)",
      "  revoke egress rule sgr-b-out-to-a of sg-0bbb (references sg-0aaa)",
      "  revoke ingress rule sgr-default-from-a of sg-000default (references sg-0aaa)",
      "  delete sg-0aaa (larder-app)",
      "  delete sg-0bbb (console-made-db)",
      "dry run: nothing changed; run again with --yes to do this",
    ]);
    expect(ec2.commandCalls(RevokeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RevokeSecurityGroupEgressCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)).toHaveLength(0);
    const ruleQuery = ec2.commandCalls(DescribeSecurityGroupRulesCommand)[0]?.args[0].input;
    expect(ruleQuery?.Filters?.[0]?.Values).toEqual(["sg-000default", "sg-0aaa", "sg-0bbb"]);
  });

  it("--yes: revokes every cross-reference before deleting, never touches the default group", async () => {
    const r = await cleanup(["--yes"]);
    expect(r.code, r.text).toBe(0);
    const calls = ec2.calls().map((c) => c.args[0]);
    const kinds = calls.map((c) => c.constructor.name).filter((n) => !n.startsWith("Describe"));
    expect(kinds).toEqual([
      "RevokeSecurityGroupIngressCommand",
      "RevokeSecurityGroupIngressCommand",
      "RevokeSecurityGroupEgressCommand",
      "RevokeSecurityGroupIngressCommand",
      "DeleteSecurityGroupCommand",
      "DeleteSecurityGroupCommand",
    ]);
    expect(ec2.commandCalls(RevokeSecurityGroupIngressCommand).map((c) => c.args[0].input)).toEqual([
      { GroupId: "sg-0aaa", SecurityGroupRuleIds: ["sgr-a-in-from-b"] },
      { GroupId: "sg-0bbb", SecurityGroupRuleIds: ["sgr-b-in-from-a"] },
      { GroupId: "sg-000default", SecurityGroupRuleIds: ["sgr-default-from-a"] },
    ]);
    expect(ec2.commandCalls(RevokeSecurityGroupEgressCommand)[0]?.args[0].input).toEqual({ GroupId: "sg-0bbb", SecurityGroupRuleIds: ["sgr-b-out-to-a"] });
    expect(ec2.commandCalls(DeleteSecurityGroupCommand).map((c) => c.args[0].input.GroupId)).toEqual(["sg-0aaa", "sg-0bbb"]);
    expect(r.text).toMatch(/deleted sg-0bbb \(console-made-db\)/);
    expect(r.lines.at(-1)).toBe("revoked 4 rule(s), deleted 2 group(s), 0 failure(s)");
  });

  it("--yes: a group still used by a network interface is reported, the rest goes on, exit 1", async () => {
    ec2
      .on(DeleteSecurityGroupCommand, { GroupId: "sg-0aaa" })
      .rejects(new EC2ServiceException({ name: "DependencyViolation", $fault: "client", $metadata: {}, message: "resource sg-0aaa has a dependent object" }));
    ec2.on(DescribeNetworkInterfacesCommand).resolves({ NetworkInterfaces: [{ NetworkInterfaceId: "eni-0123", Description: "ELB app/larder" }] });
    const r = await cleanup(["--yes"]);
    expect(r.code).toBe(1);
    expect(r.text).toMatch(/FAILED to delete sg-0aaa \(larder-app\): resource sg-0aaa has a dependent object \(still attached to eni-0123 "ELB app\/larder"; delete or detach those first\)/);
    expect(r.text).toMatch(/deleted sg-0bbb/);
    expect(r.lines.at(-1)).toBe("revoked 4 rule(s), deleted 1 group(s), 1 failure(s)");
  });

  it("a VPC with only its default group: nothing to do", async () => {
    ec2.reset();
    ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: "sg-000default", GroupName: "default" }] });
    const r = await cleanup(["--yes"]);
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([`VPC ${VPC} has no non-default security groups; nothing to do`]);
    expect(ec2.commandCalls(DescribeSecurityGroupRulesCommand)).toHaveLength(0);
  });

  it("refuses a malformed VPC id and missing credentials before calling AWS", async () => {
    await expect(main(["node", "x", "vpc-; rm -rf /", "--region", "eu-west-1"], { env: {}, out: () => {} })).rejects.toThrow(/is not a VPC id/);
    vi.stubEnv("AWS_ACCESS_KEY_ID", "");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "");
    vi.stubEnv("AWS_PROFILE", "");
    vi.stubEnv("AWS_CONFIG_FILE", "/nonexistent/config");
    vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials");
    vi.stubEnv("AWS_EC2_METADATA_DISABLED", "true");
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "");
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "");
    vi.stubEnv("AWS_WEB_IDENTITY_TOKEN_FILE", "");
    await expect(cleanup(["--yes"])).rejects.toThrow(/^no AWS credentials found: set AWS_PROFILE/);
    expect(ec2.calls()).toHaveLength(0);
  });
});
