/** GET /_api/v1/deploy/{cache} — every environment of a cache (permission `deploy` or `pull`). */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { requireDeployReader } from "../deploy/access.ts";
import { environmentStatus } from "../deploy/status.ts";

export function registerDeployList(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string } }>("/_api/v1/deploy/:cache", async (req, reply) => {
    const { cache } = await requireDeployReader(ctx, req, req.params.cache);
    const envs = await ctx.db.kysely.selectFrom("deploy_environment").selectAll().where("cache_id", "=", cache.id).orderBy("name").execute();
    const environments = [];
    for (const env of envs) environments.push(await environmentStatus(ctx.db.kysely, cache.name, env));
    return reply.send({ environments });
  });
}
