/**
 * POST /_api/v1/deploy/{cache}/{env}/activate — start a deployment (permission `deploy`).
 * 422 with the missing and unsigned paths when a target's closure is not wholly in the cache and
 * signed; 409 while another rollout moves, unless `supersede`.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { activateRequest } from "../api/deploy-types.ts";
import { parseStorePath } from "../nix/store-path.ts";
import { requireDeployer } from "../deploy/access.ts";
import { startDeployment } from "../deploy/activate.ts";
import { ensureEnvironment, lockEnvironment, type Target } from "../deploy/store.ts";
import { noEffects } from "../deploy/rollout.ts";
import { environmentStatus } from "../deploy/status.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerDeployActivate(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env/activate", async (req, reply) => {
    const { cache, caller } = await requireDeployer(ctx, req, req.params.cache, req.params.env);
    const parsed = activateRequest.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid activation: ${describeZodError(parsed.error)}`);
    const body = parsed.data;
    const targets = new Map<string, Target>();
    for (const [group, t] of Object.entries(body.targets)) {
      const storePath = typeof t === "string" ? t : t.storePath;
      try {
        parseStorePath(storePath, cache.store_dir);
      } catch (e) {
        throw badRequest(`targets.${group}: ${(e as Error).message}`);
      }
      const activation = (typeof t === "string" ? undefined : t.activation) ?? body.activation ?? { kind: "system" as const };
      targets.set(group, { storePath, activation });
    }
    const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
    const fx = noEffects();
    const status = await lockEnvironment(ctx.db, env.id, async (trx, locked) => {
      await startDeployment(ctx.db, trx, locked, cache, { targets, rollout: body.rollout, message: body.message ?? null, createdBy: caller.claims?.sub ?? null, rollbackOf: null, supersede: body.supersede }, Date.now(), fx);
      return environmentStatus(trx, cache.name, locked);
    });
    deployWatch(ctx).apply(env.id, fx);
    return reply.send(status);
  });
}
