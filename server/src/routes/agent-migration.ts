/**
 * POST /_api/v1/agent/{cache}/{env}/migration — the agent told to run a deployment's migration
 * reports how it went. Success lets the other agents have slots; failure pauses (or fails) the
 * deployment. A repeated report of the same outcome is acknowledged again (a retried request).
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { migrationReport, type AgentAck } from "../api/deploy-types.ts";
import { requireAgent } from "../deploy/access.ts";
import { appendLog, currentDeployment, ensureEnvironment, lockEnvironment, touchAgent } from "../deploy/store.ts";
import { migrationDone, noEffects } from "../deploy/rollout.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerAgentMigration(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/migration", async (req, reply) => {
    const { cache, group } = await requireAgent(ctx, req, req.params.cache, req.params.env);
    const parsed = migrationReport.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid migration report: ${describeZodError(parsed.error)}`);
    const r = parsed.data;
    const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
    const fx = noEffects();
    const ack = await lockEnvironment(ctx.db, env.id, async (trx, locked): Promise<AgentAck> => {
      const now = Date.now();
      const agent = await touchAgent(trx, locked.id, r.agent, group, now);
      const d = await currentDeployment(trx, locked);
      if (!d || d.row.id !== r.deploymentId) throw new ServerError("Conflict", `Conflict: deployment ${r.deploymentId} is not the current deployment of "${locked.name}".`);
      const outcome = await migrationDone(trx, locked, d, agent, r.ok, now, fx);
      if (outcome === "not-yours") throw new ServerError("Conflict", `Conflict: agent "${r.agent}" is not running deployment ${d.row.id}'s migration (it is ${d.row.migration_state}${d.row.migration_agent ? ` on "${d.row.migration_agent}"` : ""}).`);
      if (outcome === "recorded" && r.log !== undefined) await appendLog(trx, d.row.id, r.agent, "migration", r.ok, r.log, now);
      return { generation: locked.generation };
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(ack);
  });
}
