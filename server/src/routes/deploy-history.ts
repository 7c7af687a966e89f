/** GET /_api/v1/deploy/{cache}/{env}/history?limit= — deployments, newest first (permission `deploy` or `pull`). */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { requireDeployReader } from "../deploy/access.ts";
import { findEnvironment, parseDeployment, summary } from "../deploy/store.ts";

const query = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(20) });

export function registerDeployHistory(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env/history", async (req, reply) => {
    const { cache } = await requireDeployReader(ctx, req, req.params.cache, req.params.env);
    const parsed = query.safeParse(req.query);
    if (!parsed.success) throw badRequest(`invalid query: ${describeZodError(parsed.error)}`);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    if (!env) throw new ServerError("NoSuchEnvironment", `No environment "${req.params.env}" in cache "${cache.name}".`);
    const rows = await ctx.db.kysely.selectFrom("deployment").selectAll().where("environment_id", "=", env.id).orderBy("id", "desc").limit(parsed.data.limit).execute();
    return reply.send({ deployments: rows.map((r) => summary(parseDeployment(r), env.name)) });
  });
}
