/**
 * synth | plan | deploy | destroy: synthesize the CDKTF app (`npm run synth`), then run OpenTofu
 * (preferred when installed) or Terraform in the synthesized stack directory. Other arguments
 * (`-auto-approve`, `-var x=1`) go to the tofu/terraform subcommand. `deploy --dry-run` and `destroy --dry-run`
 * only plan.
 */
import { Command } from "commander";
import { repoRoot } from "./lib/cli.ts";
import { fail } from "./lib/errors.ts";
import { run } from "./lib/exec.ts";
import { runMain } from "./lib/main.ts";
import { terraformBinary, verifyTool } from "./lib/preflight.ts";
import { stackDir, synthesizedStacks } from "./lib/stack.ts";

export const ACTIONS = ["synth", "plan", "deploy", "destroy"] as const;
export type Action = (typeof ACTIONS)[number];

/** The tofu/terraform subcommand for an action, after `init`. */
export function terraformArgs(action: Exclude<Action, "synth">, dryRun: boolean, extra: readonly string[]): string[] {
  switch (action) {
    case "plan":
      return ["plan", "-input=false", ...extra];
    case "deploy":
      return dryRun ? ["plan", "-input=false", ...extra] : ["apply", "-input=false", ...extra];
    case "destroy":
      return dryRun ? ["plan", "-destroy", "-input=false", ...extra] : ["destroy", "-input=false", ...extra];
  }
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command("tf")
    .description("synthesize the stacks and plan, deploy or destroy one of them")
    .argument("<action>", ACTIONS.join(" | "))
    .argument("[extra...]", "arguments for tofu/terraform (after --)")
    .option("--stack <name>", "stack to use (default: the only one synthesized)")
    .option("--no-synth", "use the existing cdktf.out instead of synthesizing first")
    .option("--dry-run", "for deploy and destroy: only show the plan", false)
    // tofu's own flags (-auto-approve, -var x=1) pass through without a `--`.
    .allowUnknownOption();
  program.parse(argv);
  const options = program.opts<{ stack?: string; synth: boolean; dryRun: boolean }>();
  const [action = "", ...extra] = program.args;
  if (!(ACTIONS as readonly string[]).includes(action)) fail(`unknown action "${action}": use ${ACTIONS.join(", ")}`);
  const root = repoRoot();
  // Preflight everything before synth, so a missing tool fails in a second, not after synth.
  const tf = action === "synth" ? undefined : terraformBinary();
  if (options.synth || action === "synth") {
    verifyTool("npm");
    await run("npm", ["run", "synth"], { cwd: root });
  }
  if (tf === undefined) {
    // synth builds every stack; only the actions on one stack need to know which.
    const names = options.stack !== undefined ? [options.stack] : synthesizedStacks(root);
    const dirs = names.map((name) => stackDir(root, name));
    if (dirs.length === 0) stackDir(root);
    process.stderr.write(`synthesized ${dirs.join(", ")}\n`);
    return;
  }
  const dir = stackDir(root, options.stack);
  await run(tf, ["init", "-input=false"], { cwd: dir });
  await run(tf, terraformArgs(action as Exclude<Action, "synth">, options.dryRun, extra), { cwd: dir });
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
