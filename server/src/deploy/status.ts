/** The operator's view of an environment (EnvironmentStatus in api/deploy-types.ts). */
import type { EnvironmentStatus } from "../api/deploy-types.ts";
import { agentStatus, currentDeployment, environmentAgents, summary, type EnvRow, type Trx } from "./store.ts";

export async function environmentStatus(k: Trx, cacheName: string, env: EnvRow): Promise<EnvironmentStatus> {
  const d = await currentDeployment(k, env);
  return {
    cache: cacheName,
    environment: env.name,
    generation: env.generation,
    current: d ? { ...summary(d, env.name), rollout: d.rollout } : null,
    agents: (await environmentAgents(k, env.id)).map(agentStatus),
  };
}
