/** What one agent is told to run: its group's target in the current deployment, and how. */
import type { AgentDesired } from "../api/deploy-types.ts";
import { targetFor, type AgentRow, type Deployment } from "./store.ts";

export function desiredFor(generation: number, d: Deployment | undefined, agent: AgentRow, substituter: AgentDesired["substituter"]): AgentDesired {
  const target = d === undefined ? undefined : targetFor(d, agent.group_name);
  if (d === undefined || target === undefined) return { generation, deployment: null, substituter };
  // Where to return on failure: what the agent ran when it got its slot; before that, what it runs now.
  const previous =
    agent.run_deployment_id === d.row.id ? agent.previous_path : agent.current_path !== null && agent.current_path !== target.storePath ? agent.current_path : null;
  return {
    generation,
    deployment: {
      id: d.row.id,
      state: d.state,
      target: target.storePath,
      previous,
      activation: target.activation,
      healthCheck: d.rollout.healthCheck ?? null,
      migration: d.rollout.migration ?? null,
      agentTimeoutSeconds: d.rollout.agentTimeoutSeconds,
    },
    substituter,
  };
}
