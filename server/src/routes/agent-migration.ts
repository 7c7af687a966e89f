/**
 * POST /_api/v1/agent/{cache}/{env}/migration — the agent told to run a deployment's migration
 * reports how it went. Success lets the other agents have slots; failure pauses (or fails) the
 * deployment. A repeated report of the same outcome is acknowledged again (a retried request).
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { migrationReport, type AgentAck } from "../api/deploy-types.ts";
import { agentStep } from "../deploy/agent-step.ts";
import { appendLog, currentDeployment } from "../deploy/store.ts";
import { migrationDone } from "../deploy/rollout.ts";

export function registerAgentMigration(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/migration", async (req, reply) => {
    const ack = await agentStep(ctx, req, migrationReport, "migration report", async ({ trx, env, agent, body, now, fx }): Promise<AgentAck> => {
      const d = await currentDeployment(trx, env);
      if (!d || d.row.id !== body.deploymentId) throw new ServerError("Conflict", `Conflict: deployment ${body.deploymentId} is not the current deployment of "${env.name}".`);
      const outcome = await migrationDone(trx, env, d, agent, body.ok, now, fx);
      if (outcome === "not-yours") throw new ServerError("Conflict", `Conflict: agent "${body.agent}" is not running deployment ${d.row.id}'s migration (it is ${d.row.migration_state}${d.row.migration_agent ? ` on "${d.row.migration_agent}"` : ""}).`);
      if (outcome === "recorded" && body.log !== undefined) await appendLog(trx, d.row.id, body.agent, "migration", body.ok, body.log, now);
      return { generation: env.generation };
    });
    return reply.send(ack);
  });
}
