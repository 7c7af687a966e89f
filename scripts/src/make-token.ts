/**
 * Mints an access token on the deployed host with `larderd-admin make-token` and prints it (only
 * the token goes to stdout, so it can be piped); --save stores it as an encrypted secret instead.
 */
import { Command, Option } from "commander";
import { join } from "node:path";
import { repoRoot, targetFrom, withHostOptions, type HostOptions } from "./lib/cli.ts";
import { fail } from "./lib/errors.ts";
import { run } from "./lib/exec.ts";
import { runMain } from "./lib/main.ts";
import { lastLine, runRemote } from "./lib/remote.ts";
import { REPO_ROOT } from "./lib/stack.ts";
import { checkTokenRequest, PERMISSION_FLAGS, TokenRequestError } from "../../server/src/auth/token-request.ts";
import type { PermissionName } from "../../server/src/auth/permissions.ts";

export interface TokenRequestArgs {
  sub: string;
  validity: string;
  /** Patterns per make-token flag ("pull", "create-cache", …). */
  patterns: Partial<Record<string, string[]>>;
  /** With --agent: the deploy-agent group the token acts for. */
  agentGroup?: string;
}

/**
 * The remote command, after the request passed the very rules larderd make-token applies
 * (server/src/auth/token-request.ts): a request refused here would be refused there.
 */
export function makeTokenCommand(request: TokenRequestArgs): string[] {
  const grants = new Map<PermissionName, string[]>();
  for (const [flag, permission] of PERMISSION_FLAGS) grants.set(permission, request.patterns[flag] ?? []);
  try {
    checkTokenRequest({ sub: request.sub, validity: request.validity, grants, ...(request.agentGroup !== undefined && { agentGroup: request.agentGroup }) });
  } catch (e) {
    if (e instanceof TokenRequestError) fail(e.message);
    throw e;
  }
  const args = ["larderd-admin", "make-token", "--sub", request.sub, "--validity", request.validity];
  for (const [flag] of PERMISSION_FLAGS) {
    for (const pattern of request.patterns[flag] ?? []) args.push(`--${flag}`, pattern);
  }
  if (request.agentGroup !== undefined) args.push("--agent-group", request.agentGroup);
  return args;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: string[]): Promise<void> {
  const program = withHostOptions(new Command("make-token"))
    .description("mint a larder token on the deployed host")
    .requiredOption("--sub <subject>", "who the token is for (its sub claim)")
    .option("--validity <duration>", 'lifetime, e.g. "30d", "3 months", "1y"', "1y")
    .option("--agent-group <name>", "the deploy-agent group an --agent token acts for")
    .option("--save <file>", "store the token as an age secret (listed in secrets/recipients.json) instead of printing it");
  for (const [flag, , help] of PERMISSION_FLAGS) {
    program.addOption(new Option(`--${flag} <pattern>`, `${help} (repeatable)`).default([]).argParser(collect));
  }
  program.parse(argv);
  const options = program.opts<HostOptions & Record<string, string[]> & { sub: string; validity: string; save?: string; agentGroup?: string }>();
  const patterns: TokenRequestArgs["patterns"] = {};
  for (const [flag] of PERMISSION_FLAGS) patterns[flag] = options[flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())] ?? [];
  const command = makeTokenCommand({ sub: options.sub, validity: options.validity, patterns, ...(options.agentGroup !== undefined && { agentGroup: options.agentGroup }) });
  const target = await targetFrom(options);
  const token = lastLine(await runRemote(target, command), "larderd-admin make-token");
  if (options.save === undefined) {
    process.stdout.write(`${token}\n`);
    return;
  }
  const cli = join(REPO_ROOT, "secrets", "bin", "larder-secrets.js");
  await run(process.execPath, [cli, "--dir", join(repoRoot(), "secrets"), "add", options.save], { input: `${token}\n` });
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
