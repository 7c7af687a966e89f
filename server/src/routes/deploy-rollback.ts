/**
 * POST /_api/v1/deploy/{cache}/{env}/rollback — a new deployment with an earlier one's targets
 * (permission `deploy`): `to`, or the deployment before the current one. It replaces whatever
 * runs, checks the closure again (GC may have taken an unpinned old release) and runs no migration.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { rollbackRequest } from "../api/deploy-types.ts";
import { requireDeployer } from "../deploy/access.ts";
import { startDeployment } from "../deploy/activate.ts";
import { findEnvironment, lockEnvironment, parseDeployment } from "../deploy/store.ts";
import { noEffects } from "../deploy/rollout.ts";
import { environmentStatus } from "../deploy/status.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerDeployRollback(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env/rollback", async (req, reply) => {
    const { cache, caller } = await requireDeployer(ctx, req, req.params.cache, req.params.env);
    const parsed = rollbackRequest.safeParse(req.body ?? {});
    if (!parsed.success) throw badRequest(`invalid rollback: ${describeZodError(parsed.error)}`);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    if (!env) throw new ServerError("NoSuchEnvironment", `No environment "${req.params.env}" in cache "${cache.name}".`);
    const fx = noEffects();
    const status = await lockEnvironment(ctx.db, env.id, async (trx, locked) => {
      let q = trx.selectFrom("deployment").selectAll().where("environment_id", "=", locked.id);
      if (parsed.data.to !== undefined) q = q.where("id", "=", parsed.data.to);
      else if (locked.current_deployment_id !== null) q = q.where("id", "<", locked.current_deployment_id).orderBy("id", "desc").limit(1);
      else q = q.where("id", "<", 0);
      const row = await q.executeTakeFirst();
      if (!row) throw new ServerError("NoSuchDeployment", parsed.data.to !== undefined ? `No deployment ${parsed.data.to} in environment "${locked.name}".` : `Environment "${locked.name}" has no deployment before the current one to roll back to.`);
      if (row.id === locked.current_deployment_id) throw new ServerError("Conflict", `Conflict: deployment ${row.id} is the current one; roll back to an earlier deployment.`);
      const earlier = parseDeployment(row);
      const { migration: _dropped, ...rollout } = earlier.rollout;
      await startDeployment(
        ctx.db,
        trx,
        locked,
        cache,
        { targets: earlier.targets, rollout, message: parsed.data.message ?? `rollback to deployment ${row.id}`, createdBy: caller.claims?.sub ?? null, rollbackOf: row.id, supersede: true },
        Date.now(),
        fx,
      );
      return environmentStatus(trx, cache.name, locked);
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(status);
  });
}
