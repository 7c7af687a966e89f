/**
 * POST /_api/v1/deploy/{cache}/{env}/resume — continue a paused rollout (permission `deploy`):
 * agents that failed may try again and a failed migration runs again.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireDeployer } from "../deploy/access.ts";
import { currentDeployment, findEnvironment, lockEnvironment } from "../deploy/store.ts";
import { noEffects, resume } from "../deploy/rollout.ts";
import { environmentStatus } from "../deploy/status.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerDeployResume(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env/resume", async (req, reply) => {
    const { cache } = await requireDeployer(ctx, req, req.params.cache, req.params.env);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    if (!env) throw new ServerError("NoSuchEnvironment", `No environment "${req.params.env}" in cache "${cache.name}".`);
    const fx = noEffects();
    const status = await lockEnvironment(ctx.db, env.id, async (trx, locked) => {
      const d = await currentDeployment(trx, locked);
      if (!d || d.state !== "paused") throw new ServerError("Conflict", `Conflict: no paused rollout in "${locked.name}"${d ? ` (deployment ${d.row.id} is ${d.state})` : ""}.`);
      await resume(trx, locked, d, Date.now(), fx);
      return environmentStatus(trx, cache.name, locked);
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(status);
  });
}
