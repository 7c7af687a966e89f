/**
 * POST /_api/v1/agent/{cache}/{env}/slot — an agent asks to go out of service for a deployment.
 * Granted under the environment's lock: at most maxUnavailable at once, canaries first, and the
 * first holder runs the migration while the others wait for it.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { slotRequest, type SlotGrant } from "../api/deploy-types.ts";
import { agentStep } from "../deploy/agent-step.ts";
import { currentDeployment } from "../deploy/store.ts";
import { requestSlot } from "../deploy/rollout.ts";

export function registerAgentSlot(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/slot", async (req, reply) => {
    const grant = await agentStep(ctx, req, slotRequest, "slot request", async ({ trx, env, agent, body, now, fx }): Promise<SlotGrant> => {
      const d = await currentDeployment(trx, env);
      if (!d || d.row.id !== body.deploymentId) {
        return { granted: false, runMigration: false, retryAfterSeconds: 1, leaseSeconds: 0, reason: `deployment ${body.deploymentId} is not the current one${d ? ` (${d.row.id} is)` : ""}; poll desired again` };
      }
      return requestSlot(trx, env, d, agent, now, fx);
    });
    return reply.send(grant);
  });
}
