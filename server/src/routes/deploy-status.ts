/**
 * GET /_api/v1/deploy/{cache}/{env} — an environment's current deployment and its agents
 * (permission `deploy` or `pull`).
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireDeployReader } from "../deploy/access.ts";
import { findEnvironment } from "../deploy/store.ts";
import { environmentStatus } from "../deploy/status.ts";

export function registerDeployStatus(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string; env: string } }>("/_api/v1/deploy/:cache/:env", async (req, reply) => {
    const { cache } = await requireDeployReader(ctx, req, req.params.cache, req.params.env);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    if (!env) throw new ServerError("NoSuchEnvironment", `No environment "${req.params.env}" in cache "${cache.name}": it exists once something was activated there or an agent polled it.`);
    return reply.send(await environmentStatus(ctx.db.kysely, cache.name, env));
  });
}
