// `npm run synth`: writes cdktf.out/ for every deployment in stacks/deployments (or the ones named),
// then checks the output against the policy rules. No cdktf-cli needed (it cannot run on Node 24).
//
//   node src/synth.ts [--out DIR] [--deployments DIR] [NAME...]
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { ConfigError } from "./config.ts";
import { DEPLOYMENTS_DIRECTORY, loadDeployments } from "./deployments.ts";
import { STATE_DIRECTORY, createApp } from "./main.ts";
import { checkPolicy } from "./policy.ts";
import type { TerraformJson } from "./policy.ts";

const REPOSITORY = path.join(import.meta.dirname, "..", "..");

async function main(): Promise<number> {
  const started = performance.now();
  const { values, positionals } = parseArgs({
    options: { out: { type: "string" }, deployments: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  // cdktf-cli passes its output directory in CDKTF_OUTDIR.
  const outdir = path.resolve(values.out ?? (process.env["CDKTF_OUTDIR"] || path.join(REPOSITORY, "cdktf.out")));
  let deployments = await loadDeployments(path.resolve(values.deployments ?? DEPLOYMENTS_DIRECTORY));
  if (positionals.length > 0) {
    const unknown = positionals.filter((name) => !deployments.some((d) => d.name === name));
    if (unknown.length > 0) {
      throw new ConfigError(`no deployment named ${unknown.join(", ")}; known: ${deployments.map((d) => d.name).join(", ")}`);
    }
    deployments = deployments.filter((d) => positionals.includes(d.name));
  }
  if (deployments.length === 0) throw new ConfigError("no deployments to synthesize; add one to stacks/deployments/");

  const app = createApp({ outdir, stateDirectory: STATE_DIRECTORY, deployments });
  app.synth();

  let failed = false;
  for (const stack of app.node.children) {
    const file = path.join(outdir, "stacks", stack.node.id, "cdk.tf.json");
    const violations = checkPolicy(JSON.parse(await readFile(file, "utf8")) as TerraformJson);
    for (const violation of violations) console.error(`${stack.node.id}: policy ${violation}`);
    failed ||= violations.length > 0;
  }
  if (failed) return 1;
  const stacks = app.node.children.map((stack) => stack.node.id).join(", ");
  console.log(`synthesized ${stacks} into ${path.relative(process.cwd(), outdir) || "."} in ${Math.round(performance.now() - started)} ms`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof ConfigError ? `invalid config: ${error.message}` : error);
    process.exit(error instanceof ConfigError ? 2 : 1);
  },
);
