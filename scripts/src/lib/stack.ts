/**
 * Where the deployed stack's facts come from: `cdktf.out/stacks/<stack>` (written by `npm run
 * synth`) and its Terraform outputs, read with `tofu|terraform output -json`:
 *
 *     { "public_ip": { "sensitive": false, "type": "string", "value": "203.0.113.7" }, … }
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fail } from "./errors.ts";
import { run } from "./exec.ts";
import { terraformBinary } from "./preflight.ts";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export const OUTPUT_NAMES = ["url", "public_ip", "instance_id", "vpc_id", "bucket", "database_endpoint", "region"] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];
export type StackOutputs = Partial<Record<OutputName, string>>;

export function stacksDir(root: string): string {
  return join(root, "cdktf.out", "stacks");
}

/** The names of the synthesized stacks, sorted. */
export function synthesizedStacks(root: string): string[] {
  const base = stacksDir(root);
  return existsSync(base) ? readdirSync(base).filter((d) => existsSync(join(base, d, "cdk.tf.json"))).sort() : [];
}

/** The synthesized stack to use: the one named, or the only one there is. */
export function stackDir(root: string, stack?: string): string {
  const base = stacksDir(root);
  const present = synthesizedStacks(root);
  if (stack !== undefined) {
    if (!present.includes(stack)) {
      fail(`stack "${stack}" is not synthesized in ${base}${present.length ? ` (found: ${present.join(", ")})` : ""}: run \`just synth\``);
    }
    return join(base, stack);
  }
  if (present.length === 0) fail(`no synthesized stack in ${base}: run \`just synth\` (and \`just deploy\` if it was never deployed)`);
  if (present.length > 1) fail(`several stacks in ${base} (${present.join(", ")}): pass --stack NAME`);
  return join(base, present[0] as string);
}

/** Parses `output -json`; keeps the known outputs that are strings and ignores the rest. */
export function parseOutputs(json: string): StackOutputs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    fail("terraform output -json did not print JSON; run `just deploy` first");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail("terraform output -json printed no object");
  const outputs: StackOutputs = {};
  for (const name of OUTPUT_NAMES) {
    const entry = (parsed as Record<string, { value?: unknown } | undefined>)[name];
    if (typeof entry?.value === "string" && entry.value !== "") outputs[name] = entry.value;
  }
  return outputs;
}

export async function readOutputs(root: string, stack?: string): Promise<StackOutputs> {
  const dir = stackDir(root, stack);
  if (!existsSync(join(dir, ".terraform")) && !existsSync(join(dir, "terraform.tfstate"))) {
    fail(`stack ${dir} was never initialised, so it has no outputs: run \`just deploy\` first`);
  }
  const tf = terraformBinary();
  return parseOutputs(await run(tf, ["output", "-json"], { cwd: dir, capture: true, quiet: true }));
}

export function requireOutput(outputs: StackOutputs, name: OutputName, alternative: string): string {
  const value = outputs[name];
  if (value === undefined) fail(`the stack has no "${name}" output yet: run \`just deploy\` first, or ${alternative}`);
  return value;
}
