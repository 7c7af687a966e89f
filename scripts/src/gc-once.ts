/**
 * Runs one garbage collection on the deployed host (`larderd-admin --mode
 * garbage-collector-once`, which runs as the service user with the service's config) and prints
 * what it removed.
 */
import { Command } from "commander";
import { targetFrom, withHostOptions, type HostOptions } from "./lib/cli.ts";
import { formatGcSummary, GC_COMMAND, parseGcSummary } from "./lib/gc-summary.ts";
import { runMain } from "./lib/main.ts";
import { lastLine, runRemote } from "./lib/remote.ts";

export async function main(argv: string[]): Promise<void> {
  const program = withHostOptions(new Command("gc-once"))
    .description("run larder's garbage collector once on the deployed host and print what it removed")
    .option("--json", "print the summary as JSON", false);
  program.parse(argv);
  const options = program.opts<HostOptions & { json: boolean }>();
  const target = await targetFrom(options);
  const stdout = await runRemote(target, GC_COMMAND);
  const summary = parseGcSummary(lastLine(stdout, "larderd-admin"));
  const log = stdout.trimEnd().split("\n").slice(0, -1).join("\n");
  if (log !== "") process.stderr.write(`${log}\n`);
  process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : `GC on ${target.host}:\n${formatGcSummary(summary)}\n`);
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
