// The cdktf app: one LarderStack per deployment, plus one state bootstrap stack per account and
// region those deployments use.
import path from "node:path";
import { App } from "cdktf";
import type { Deployment } from "./config.ts";
import { LarderStack, stackName } from "./larder-stack.ts";
import { StateBootstrapStack, relativeStatePath, stateStackName } from "./state.ts";

export interface AppOptions {
  readonly outdir: string;
  /** Where bootstrap stacks keep their local state files (stacks/state, committed). */
  readonly stateDirectory: string;
  readonly deployments: readonly Deployment[];
}

export const STATE_DIRECTORY = path.join(import.meta.dirname, "..", "state");

export function createApp(options: AppOptions): App {
  const app = new App({ outdir: options.outdir });
  const bootstraps = new Map<string, { accountId: string; region: string }>();
  for (const deployment of options.deployments) {
    new LarderStack(app, stackName(deployment), deployment);
    bootstraps.set(stateStackName(deployment.accountId, deployment.region), { accountId: deployment.accountId, region: deployment.region });
  }
  for (const [name, { accountId, region }] of bootstraps) {
    new StateBootstrapStack(app, name, {
      accountId,
      region,
      localStatePath: relativeStatePath(path.join(options.outdir, "stacks", name), options.stateDirectory, name),
    });
  }
  return app;
}
