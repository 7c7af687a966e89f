/** POST /_api/v1/deploy/{cache}/{env}/pause — stop handing out slots (permission `deploy`). */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireDeployer } from "../deploy/access.ts";
import { currentDeployment, findEnvironment, lockEnvironment, RUNNING } from "../deploy/store.ts";
import { noEffects, pause } from "../deploy/rollout.ts";
import { environmentStatus } from "../deploy/status.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerDeployPause(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env/pause", async (req, reply) => {
    const { cache, caller } = await requireDeployer(ctx, req, req.params.cache, req.params.env);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    if (!env) throw new ServerError("NoSuchEnvironment", `No environment "${req.params.env}" in cache "${cache.name}".`);
    const fx = noEffects();
    const status = await lockEnvironment(ctx.db, env.id, async (trx, locked) => {
      const d = await currentDeployment(trx, locked);
      if (!d || !RUNNING.has(d.state)) throw new ServerError("Conflict", `Conflict: no rollout of "${locked.name}" is running${d ? ` (deployment ${d.row.id} is ${d.state})` : ""}.`);
      await pause(trx, locked, d, caller.claims?.sub ?? "an operator", Date.now(), fx);
      return environmentStatus(trx, cache.name, locked);
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(status);
  });
}
