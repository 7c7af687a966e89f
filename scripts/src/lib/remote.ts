/**
 * Commands on the deployed host go through ssh. ssh joins its arguments into one string that the
 * remote login shell parses, so each argument is single-quoted here: a pattern like `*` must
 * reach larderd-admin as `*`, not as the remote home directory's file names.
 */
import { fail } from "./errors.ts";
import { run } from "./exec.ts";
import { verifyTool } from "./preflight.ts";
import { readOutputs, requireOutput } from "./stack.ts";

export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export interface Target {
  host: string;
  user: string;
  /** Extra `ssh` options, e.g. ["-i", "~/.ssh/deploy"]. */
  sshOptions: string[];
}

export function sshArgs(target: Target, remote: readonly string[]): string[] {
  if (target.host.startsWith("-") || target.user.startsWith("-")) fail(`invalid host or user "${target.user}@${target.host}"`);
  const args = [...target.sshOptions, `${target.user}@${target.host}`];
  if (remote.length > 0) args.push("--", remote.map(shellQuote).join(" "));
  return args;
}

/** The host to talk to: --host, or the stack's public_ip output. */
export async function resolveHost(root: string, options: { host?: string; stack?: string }): Promise<string> {
  if (options.host !== undefined) return options.host;
  try {
    return requireOutput(await readOutputs(root, options.stack), "public_ip", "pass --host HOST");
  } catch (error) {
    const message = (error as Error).message;
    fail(message.includes("--host") ? message : `${message}, or pass --host HOST`);
  }
}

/** Runs `remote` on the host and returns its stdout (stderr goes to the terminal). */
export async function runRemote(target: Target, remote: readonly string[], options: { input?: string } = {}): Promise<string> {
  verifyTool("ssh");
  return run("ssh", sshArgs(target, remote), { capture: true, ...options });
}

/** The last non-empty line of a command's output, where the admin wrapper puts its result. */
export function lastLine(stdout: string, what: string): string {
  const line = stdout.trimEnd().split("\n").at(-1)?.trim();
  if (line === undefined || line === "") fail(`${what} printed nothing`);
  return line;
}
