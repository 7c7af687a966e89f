/**
 * vpc-sg-cleanup [VPC_ID] [--region R] [--yes]: removes the non-default security groups that
 * keep a VPC (and so `just destroy`) from being deleted. Dry run unless --yes.
 */
import { EC2Client } from "@aws-sdk/client-ec2";
import { Command } from "commander";
import { verifyAwsCredentials } from "./lib/aws.ts";
import { repoRoot } from "./lib/cli.ts";
import { fail } from "./lib/errors.ts";
import { runMain } from "./lib/main.ts";
import { applyCleanup, describePlan, planCleanup } from "./lib/security-groups.ts";
import { readOutputs, type StackOutputs } from "./lib/stack.ts";

export interface Deps {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
}

export async function main(argv: string[], deps: Deps): Promise<number> {
  const program = new Command("vpc-sg-cleanup")
    .description("revoke cross-references between a VPC's non-default security groups and delete them (dry run unless --yes)")
    .argument("[vpc-id]", "VPC to clean (default: the stack's vpc_id output)")
    .option("--region <region>", "AWS region (default: $AWS_REGION, then the stack's region output)")
    .option("--stack <name>", "synthesized stack to read outputs from")
    .option("--yes", "really revoke and delete", false);
  program.parse(argv);
  const options = program.opts<{ region?: string; stack?: string; yes: boolean }>();
  let vpcId = program.args[0];
  let region = options.region ?? deps.env.AWS_REGION ?? deps.env.AWS_DEFAULT_REGION;
  if (vpcId === undefined || region === undefined) {
    let outputs: StackOutputs;
    try {
      outputs = await readOutputs(repoRoot(), options.stack);
    } catch (error) {
      fail(`${vpcId === undefined ? "no VPC_ID given" : "no region given"} and ${(error as Error).message}`);
    }
    vpcId ??= outputs.vpc_id ?? fail("the stack has no vpc_id output: pass VPC_ID");
    region ??= outputs.region ?? fail("no AWS region: pass --region or set AWS_REGION");
  }
  if (!/^vpc-[0-9a-f]{8,17}$/.test(vpcId)) fail(`"${vpcId}" is not a VPC id (vpc-0123abcd…)`);
  const ec2 = new EC2Client({ region });
  await verifyAwsCredentials(ec2);
  const plan = await planCleanup(ec2, vpcId);
  for (const line of describePlan(plan)) deps.out(line);
  if (plan.groups.length === 0) return 0;
  if (!options.yes) {
    deps.out("dry run: nothing changed; run again with --yes to do this");
    return 0;
  }
  const result = await applyCleanup(ec2, plan, (line) => deps.out(line));
  deps.out(`revoked ${result.revoked} rule(s), deleted ${result.deleted} group(s), ${result.failed} failure(s)`);
  return result.failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  runMain(import.meta.url, () => main(process.argv, { env: process.env, out: (line) => process.stdout.write(`${line}\n`) }));
}
