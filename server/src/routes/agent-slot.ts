/**
 * POST /_api/v1/agent/{cache}/{env}/slot — an agent asks to go out of service for a deployment.
 * Granted under the environment's lock: at most maxUnavailable at once, canaries first, and the
 * first holder runs the migration while the others wait for it.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { slotRequest, type SlotGrant } from "../api/deploy-types.ts";
import { requireAgent } from "../deploy/access.ts";
import { currentDeployment, ensureEnvironment, lockEnvironment, touchAgent } from "../deploy/store.ts";
import { noEffects, requestSlot } from "../deploy/rollout.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerAgentSlot(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/slot", async (req, reply) => {
    const { cache, group } = await requireAgent(ctx, req, req.params.cache, req.params.env);
    const parsed = slotRequest.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid slot request: ${describeZodError(parsed.error)}`);
    const r = parsed.data;
    const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
    const fx = noEffects();
    const grant = await lockEnvironment(ctx.db, env.id, async (trx, locked): Promise<SlotGrant> => {
      const now = Date.now();
      const agent = await touchAgent(trx, locked.id, r.agent, group, now);
      const d = await currentDeployment(trx, locked);
      if (!d || d.row.id !== r.deploymentId) {
        return { granted: false, runMigration: false, retryAfterSeconds: 1, leaseSeconds: 0, reason: `deployment ${r.deploymentId} is not the current one${d ? ` (${d.row.id} is)` : ""}; poll desired again` };
      }
      return requestSlot(trx, locked, d, agent, now, fx);
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(grant);
  });
}
