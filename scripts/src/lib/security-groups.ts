/**
 * Unsticking `destroy` when the VPC cannot be deleted because of security groups Terraform does
 * not manage (chutney's `vpc-sg-cleanup`, made safe): find the VPC's non-default groups, revoke
 * the rules by which groups reference them (a referenced group cannot be deleted), then delete
 * the groups. Nothing is changed unless `apply` is called.
 */
import {
  DeleteSecurityGroupCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupRulesCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupEgressCommand,
  RevokeSecurityGroupIngressCommand,
  type DescribeSecurityGroupRulesCommandOutput,
  type EC2Client,
  type SecurityGroup,
  type SecurityGroupRule,
} from "@aws-sdk/client-ec2";

export interface GroupRef {
  id: string;
  name: string;
}

export interface ReferencingRule {
  /** The group the rule belongs to. */
  groupId: string;
  ruleId: string;
  isEgress: boolean;
  /** The group being deleted that the rule points at. */
  references: string;
}

export interface CleanupPlan {
  vpcId: string;
  groups: GroupRef[];
  rules: ReferencingRule[];
}

export async function planCleanup(ec2: EC2Client, vpcId: string): Promise<CleanupPlan> {
  const all: SecurityGroup[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: "vpc-id", Values: [vpcId] }], NextToken: nextToken }));
    all.push(...(page.SecurityGroups ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  const groups = all
    .filter((g) => g.GroupName !== "default" && g.GroupId !== undefined)
    .map((g) => ({ id: g.GroupId as string, name: g.GroupName ?? "" }))
    .sort((a, b) => a.id.localeCompare(b.id));
  const doomed = new Set(groups.map((g) => g.id));
  const rules: ReferencingRule[] = [];
  if (groups.length > 0) {
    const allRules: SecurityGroupRule[] = [];
    nextToken = undefined;
    do {
      const page: DescribeSecurityGroupRulesCommandOutput = await ec2.send(
        new DescribeSecurityGroupRulesCommand({ Filters: [{ Name: "group-id", Values: all.map((g) => g.GroupId ?? "") }], NextToken: nextToken }),
      );
      allRules.push(...(page.SecurityGroupRules ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
    for (const rule of allRules) {
      const target = rule.ReferencedGroupInfo?.GroupId;
      // A group's rules about itself go away with it; only references across groups block deletes.
      if (target === undefined || !doomed.has(target) || target === rule.GroupId) continue;
      rules.push({ groupId: rule.GroupId ?? "", ruleId: rule.SecurityGroupRuleId ?? "", isEgress: rule.IsEgress === true, references: target });
    }
  }
  return { vpcId, groups, rules };
}

export function describePlan(plan: CleanupPlan): string[] {
  if (plan.groups.length === 0) return [`VPC ${plan.vpcId} has no non-default security groups; nothing to do`];
  return [
    `VPC ${plan.vpcId}: ${plan.groups.length} non-default security group(s), ${plan.rules.length} cross-reference rule(s)`,
    ...plan.rules.map((r) => `  revoke ${r.isEgress ? "egress" : "ingress"} rule ${r.ruleId} of ${r.groupId} (references ${r.references})`),
    ...plan.groups.map((g) => `  delete ${g.id} (${g.name})`),
  ];
}

export interface CleanupResult {
  revoked: number;
  deleted: number;
  failed: number;
}

/** Revokes every cross-reference first, then deletes; reports each step and keeps going on failure. */
export async function applyCleanup(ec2: EC2Client, plan: CleanupPlan, report: (line: string) => void): Promise<CleanupResult> {
  const result: CleanupResult = { revoked: 0, deleted: 0, failed: 0 };
  const batches = new Map<string, ReferencingRule[]>();
  for (const rule of plan.rules) {
    const key = `${rule.groupId} ${rule.isEgress}`;
    batches.set(key, [...(batches.get(key) ?? []), rule]);
  }
  for (const rules of batches.values()) {
    const first = rules[0] as ReferencingRule;
    const input = { GroupId: first.groupId, SecurityGroupRuleIds: rules.map((r) => r.ruleId) };
    const what = `${first.isEgress ? "egress" : "ingress"} rule(s) ${input.SecurityGroupRuleIds.join(", ")} of ${first.groupId}`;
    try {
      if (first.isEgress) await ec2.send(new RevokeSecurityGroupEgressCommand(input));
      else await ec2.send(new RevokeSecurityGroupIngressCommand(input));
      result.revoked += rules.length;
      report(`revoked ${what}`);
    } catch (error) {
      result.failed++;
      report(`FAILED to revoke ${what}: ${(error as Error).message}`);
    }
  }
  for (const group of plan.groups) {
    try {
      await ec2.send(new DeleteSecurityGroupCommand({ GroupId: group.id }));
      result.deleted++;
      report(`deleted ${group.id} (${group.name})`);
    } catch (error) {
      result.failed++;
      report(`FAILED to delete ${group.id} (${group.name}): ${(error as Error).message}${await usersOf(ec2, group.id)}`);
    }
  }
  return result;
}

/** Why a delete failed, when network interfaces still use the group. */
async function usersOf(ec2: EC2Client, groupId: string): Promise<string> {
  try {
    const page = await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name: "group-id", Values: [groupId] }] }));
    const enis = (page.NetworkInterfaces ?? []).map((n) => `${n.NetworkInterfaceId}${n.Description ? ` "${n.Description}"` : ""}`);
    return enis.length > 0 ? ` (still attached to ${enis.join(", ")}; delete or detach those first)` : "";
  } catch {
    return "";
  }
}
