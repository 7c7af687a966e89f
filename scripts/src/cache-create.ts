/** Creates a binary cache on the deployed host with `larderd-admin create-cache`. */
import { Command, Option } from "commander";
import { targetFrom, withHostOptions, type HostOptions } from "./lib/cli.ts";
import { fail } from "./lib/errors.ts";
import { runMain } from "./lib/main.ts";
import { runRemote } from "./lib/remote.ts";

export interface CacheRequest {
  name: string;
  public: boolean;
  priority?: string;
  upstreamKeyNames: string[];
}

export function createCacheCommand(request: CacheRequest): string[] {
  if (!/^[a-z0-9][a-z0-9._-]{0,49}$/.test(request.name)) {
    fail(`cache name "${request.name}" must be lower-case letters, digits, ".", "_" or "-" (at most 50)`);
  }
  const args = ["larderd-admin", "create-cache", request.name];
  if (request.public) args.push("--public");
  if (request.priority !== undefined) {
    if (!/^\d+$/.test(request.priority)) fail(`--priority "${request.priority}" is not a whole number`);
    args.push("--priority", request.priority);
  }
  for (const key of request.upstreamKeyNames) args.push("--upstream-cache-key-name", key);
  return args;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: string[]): Promise<void> {
  const program = withHostOptions(new Command("cache-create"))
    .description("create a binary cache on the deployed host")
    .argument("<name>", "cache name")
    .option("--public", "anyone may pull without a token", false)
    .option("--priority <n>", "priority advertised in nix-cache-info (lower is preferred)")
    .addOption(
      new Option("--upstream-cache-key-name <name>", "signing key name of an upstream cache whose paths are not stored (repeatable)")
        .default([])
        .argParser(collect),
    );
  program.parse(argv);
  const options = program.opts<HostOptions & { public: boolean; priority?: string; upstreamCacheKeyName: string[] }>();
  const command = createCacheCommand({
    name: program.args[0] ?? "",
    public: options.public,
    priority: options.priority,
    upstreamKeyNames: options.upstreamCacheKeyName,
  });
  const target = await targetFrom(options);
  process.stdout.write(await runRemote(target, command));
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
