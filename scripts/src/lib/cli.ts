/** Options shared by the scripts that talk to the deployed host. */
import { Command, Option } from "commander";
import { resolve } from "node:path";
import { resolveHost, type Target } from "./remote.ts";
import { REPO_ROOT } from "./stack.ts";

/** The repository to work in; LARDER_ROOT exists so tests can point scripts at a scratch tree. */
export function repoRoot(): string {
  return resolve(process.env.LARDER_ROOT ?? REPO_ROOT);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface HostOptions {
  host?: string;
  user: string;
  stack?: string;
  sshOption: string[];
}

export function withHostOptions(command: Command): Command {
  return command
    .option("--host <host>", "host to use instead of the stack's public_ip output")
    .option("--user <user>", "ssh user on the host", "root")
    .option("--stack <name>", "synthesized stack to read outputs from (default: the only one)")
    .addOption(new Option("--ssh-option <arg>", "extra argument for ssh, repeatable (e.g. --ssh-option=-p2222)").default([]).argParser(collect));
}

export async function targetFrom(options: HostOptions): Promise<Target> {
  const host = await resolveHost(repoRoot(), options);
  return { host, user: options.user, sshOptions: options.sshOption };
}
