/** An interactive shell on the deployed host (address from the stack outputs or --host). */
import { Command } from "commander";
import { targetFrom, withHostOptions, type HostOptions } from "./lib/cli.ts";
import { run } from "./lib/exec.ts";
import { runMain } from "./lib/main.ts";
import { verifyTool } from "./lib/preflight.ts";
import { sshArgs } from "./lib/remote.ts";

export async function main(argv: string[]): Promise<void> {
  const program = withHostOptions(new Command("ssh"))
    .description("open a shell (or run a command) on the deployed host")
    .argument("[command...]", "command to run instead of a shell")
    // Flags after the command belong to it (just ssh larderd-admin make-token --sub ci …), not to ssh.ts.
    .passThroughOptions();
  program.parse(argv);
  verifyTool("ssh");
  const target = await targetFrom(program.opts<HostOptions>());
  await run("ssh", sshArgs(target, program.args));
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
