/**
 * POST /_api/v1/agent/{cache}/{env}/report — an agent says what it runs and how its current step
 * went (also its heartbeat while it holds a slot). A healthy report on the target frees the slot;
 * a failed one frees it and pauses, rolls back or carries on as the rollout says.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { agentReport, type ActivationLog, type AgentAck } from "../api/deploy-types.ts";
import { requireAgent } from "../deploy/access.ts";
import { appendLog, currentDeployment, ensureEnvironment, lockEnvironment, touchAgent } from "../deploy/store.ts";
import { afterReport, noEffects } from "../deploy/rollout.ts";
import { deployWatch } from "../deploy/watch.ts";

/** Which step a report's log is the output of. */
function stepOf(state: string, before: string): ActivationLog["step"] {
  if (state === "rolling-back" || state === "rolled-back") return "rollback";
  if (state === "checking" || state === "healthy" || (state === "failed" && before === "checking")) return "health-check";
  if (state === "migrating") return "migration";
  return "activation";
}

export function registerAgentReport(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/report", async (req, reply) => {
    const { cache, group } = await requireAgent(ctx, req, req.params.cache, req.params.env);
    const parsed = agentReport.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid report: ${describeZodError(parsed.error)}`);
    const r = parsed.data;
    const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
    const fx = noEffects();
    const ack = await lockEnvironment(ctx.db, env.id, async (trx, locked): Promise<AgentAck> => {
      const now = Date.now();
      const agent = await touchAgent(trx, locked.id, r.agent, group, now);
      if (r.deploymentId !== null) {
        const own = await trx.selectFrom("deployment").select("id").where("id", "=", r.deploymentId).where("environment_id", "=", locked.id).executeTakeFirst();
        if (!own) throw badRequest(`deploymentId: deployment ${r.deploymentId} is not one of environment "${locked.name}"`);
      }
      const before = agent.state;
      const fields = { state: r.state, current_path: r.currentPath, message: r.message ?? null, deployment_id: r.deploymentId };
      await trx.updateTable("deploy_agent").set(fields).where("id", "=", agent.id).execute();
      Object.assign(agent, fields);
      if (r.log !== undefined && r.deploymentId !== null) await appendLog(trx, r.deploymentId, r.agent, stepOf(r.state, before), r.state !== "failed", r.log, now);
      const d = await currentDeployment(trx, locked);
      if (d && d.row.id === r.deploymentId) await afterReport(trx, locked, d, agent, before, now, fx);
      return { generation: locked.generation };
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(ack);
  });
}
