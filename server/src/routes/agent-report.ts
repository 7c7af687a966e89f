/**
 * POST /_api/v1/agent/{cache}/{env}/report — an agent says what it runs and how its current step
 * went (also its heartbeat while it holds a slot). A healthy report on the target frees the slot;
 * a failed one frees it and pauses, rolls back or carries on as the rollout says.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { parseStorePath } from "../nix/store-path.ts";
import { agentReport, type ActivationLog, type AgentAck } from "../api/deploy-types.ts";
import { agentStep } from "../deploy/agent-step.ts";
import { appendLog, currentDeployment } from "../deploy/store.ts";
import { afterReport } from "../deploy/rollout.ts";

/** Which step a report's log is the output of. */
function stepOf(state: string, before: string): ActivationLog["step"] {
  if (state === "rolling-back" || state === "rolled-back") return "rollback";
  if (state === "checking" || state === "healthy" || (state === "failed" && before === "checking")) return "health-check";
  if (state === "migrating") return "migration";
  return "activation";
}

export function registerAgentReport(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/report", async (req, reply) => {
    const ack = await agentStep(ctx, req, agentReport, "report", async ({ storeDir, trx, env, agent, body: r, now, fx }): Promise<AgentAck> => {
      // What the host runs is shown to operators and becomes the rollback target: a store path or nothing.
      if (r.currentPath !== null) {
        try {
          parseStorePath(r.currentPath, storeDir);
        } catch (e) {
          throw badRequest(`currentPath: ${(e as Error).message}`);
        }
      }
      if (r.deploymentId !== null) {
        const own = await trx.selectFrom("deployment").select("id").where("id", "=", r.deploymentId).where("environment_id", "=", env.id).executeTakeFirst();
        if (!own) throw badRequest(`deploymentId: deployment ${r.deploymentId} is not one of environment "${env.name}"`);
      }
      const before = agent.state;
      const fields = { state: r.state, current_path: r.currentPath, message: r.message ?? null, deployment_id: r.deploymentId };
      await trx.updateTable("deploy_agent").set(fields).where("id", "=", agent.id).execute();
      Object.assign(agent, fields);
      if (r.log !== undefined && r.deploymentId !== null) await appendLog(trx, r.deploymentId, r.agent, stepOf(r.state, before), r.state !== "failed", r.log, now);
      const d = await currentDeployment(trx, env);
      if (d && d.row.id === r.deploymentId) await afterReport(trx, env, d, agent, before, now, fx);
      return { generation: env.generation };
    });
    return reply.send(ack);
  });
}
