// Loads the deployment files: every *.ts (default export) and *.json in a directory, each checked.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, parseDeployment } from "./config.ts";
import type { Deployment, DeploymentInput } from "./config.ts";

export const DEPLOYMENTS_DIRECTORY = path.join(import.meta.dirname, "..", "deployments");

export async function loadDeployments(directory: string): Promise<Deployment[]> {
  const files = (await readdir(directory))
    .filter((file) => (file.endsWith(".ts") && !file.endsWith(".test.ts") && !file.endsWith(".d.ts")) || file.endsWith(".json"))
    .sort();
  const deployments: Deployment[] = [];
  for (const file of files) {
    const full = path.join(directory, file);
    const input = file.endsWith(".json")
      ? (JSON.parse(await readFile(full, "utf8")) as DeploymentInput)
      : ((await import(pathToFileURL(full).href)) as { default?: DeploymentInput }).default;
    if (input === undefined) throw new ConfigError(`${full}: has no default export; write \`export default { … } satisfies DeploymentInput\``);
    try {
      deployments.push(parseDeployment(input));
    } catch (error) {
      if (error instanceof ConfigError) throw new ConfigError(`${full}: ${error.message}`);
      throw error;
    }
  }
  const names = new Set<string>();
  for (const deployment of deployments) {
    if (names.has(deployment.name)) throw new ConfigError(`${directory}: two deployments are named "${deployment.name}"; names must be unique`);
    names.add(deployment.name);
  }
  return deployments;
}
