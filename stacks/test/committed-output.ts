// Synthesizes every committed deployment (stacks/deployments) once into a temporary directory.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DEPLOYMENTS_DIRECTORY, loadDeployments } from "../src/deployments.ts";
import { createApp } from "../src/main.ts";
import type { TerraformJson } from "../src/policy.ts";

export interface SynthesizedStack {
  readonly name: string;
  readonly tf: TerraformJson;
}

export async function synthesizeCommitted(): Promise<SynthesizedStack[]> {
  const outdir = mkdtempSync(path.join(tmpdir(), "larder-stacks-"));
  const deployments = await loadDeployments(DEPLOYMENTS_DIRECTORY);
  const app = createApp({ outdir, stateDirectory: path.join(outdir, "state"), deployments });
  try {
    app.synth();
    return app.node.children.map((stack) => ({
      name: stack.node.id,
      tf: JSON.parse(readFileSync(path.join(outdir, "stacks", stack.node.id, "cdk.tf.json"), "utf8")) as TerraformJson,
    }));
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
