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

/** The permission flags larderd-admin make-token takes, each with a cache-name pattern. */
export const PERMISSIONS = ["pull", "push", "delete", "create-cache", "configure-cache", "configure-cache-retention", "destroy-cache"] as const;

export interface TokenRequest {
  sub: string;
  validity: string;
  patterns: Partial<Record<(typeof PERMISSIONS)[number], string[]>>;
}

export function makeTokenCommand(request: TokenRequest): string[] {
  if (!/^\S+$/.test(request.validity)) fail(`--validity "${request.validity}" is not a duration like 30d or 1y`);
  const args = ["larderd-admin", "make-token", "--sub", request.sub, "--validity", request.validity];
  for (const permission of PERMISSIONS) {
    for (const pattern of request.patterns[permission] ?? []) args.push(`--${permission}`, pattern);
  }
  if (args.length === 6) fail("the token would grant nothing: add --pull PATTERN, --push PATTERN, …");
  return args;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: string[]): Promise<void> {
  const program = withHostOptions(new Command("make-token"))
    .description("mint a larder token on the deployed host")
    .requiredOption("--sub <subject>", "who the token is for (its sub claim)")
    .option("--validity <duration>", "lifetime, e.g. 30d or 1y", "1y")
    .option("--save <file>", "store the token as an age secret (listed in secrets/recipients.json) instead of printing it");
  for (const permission of PERMISSIONS) {
    program.addOption(new Option(`--${permission} <pattern>`, `cache name pattern for ${permission} (repeatable)`).default([]).argParser(collect));
  }
  program.parse(argv);
  const options = program.opts<HostOptions & Record<string, string[]> & { sub: string; validity: string; save?: string }>();
  const patterns: TokenRequest["patterns"] = {};
  for (const permission of PERMISSIONS) {
    const key = permission.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    patterns[permission] = options[key] ?? [];
  }
  const command = makeTokenCommand({ sub: options.sub, validity: options.validity, patterns });
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
