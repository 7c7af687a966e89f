/**
 * GET /_api/v1/deploy/{cache}/{env}/deployments/{id}/logs?agent= — the tails of each step's
 * output that agents reported (permission `deploy` or `pull`): the newest LOGS_MAX entries, oldest
 * first, so an answer stays a few MiB however large the fleet (`agent` narrows it to one host).
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { AGENT_NAME_RE, type ActivationLog } from "../api/deploy-types.ts";
import { requireDeployReader } from "../deploy/access.ts";
import { findEnvironment } from "../deploy/store.ts";

const LOGS_MAX = 100;
const query = z.object({ agent: z.string().regex(AGENT_NAME_RE, "is not an agent name").optional() });

export function registerDeployLogs(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string; env: string; id: string } }>("/_api/v1/deploy/:cache/:env/deployments/:id/logs", async (req, reply) => {
    const { cache } = await requireDeployReader(ctx, req, req.params.cache, req.params.env);
    if (!/^[1-9][0-9]{0,14}$/.test(req.params.id)) throw badRequest(`deployment id "${req.params.id.slice(0, 20)}" is not a positive integer`);
    const parsed = query.safeParse(req.query);
    if (!parsed.success) throw badRequest(`invalid query: ${describeZodError(parsed.error)}`);
    const env = await findEnvironment(ctx.db.kysely, cache.id, req.params.env);
    const d = env && (await ctx.db.kysely.selectFrom("deployment").select("id").where("id", "=", Number(req.params.id)).where("environment_id", "=", env.id).executeTakeFirst());
    if (!d) throw new ServerError("NoSuchDeployment", `No deployment ${req.params.id} in environment "${req.params.env}" of cache "${cache.name}".`);
    let q = ctx.db.kysely.selectFrom("deploy_log").selectAll().where("deployment_id", "=", d.id);
    if (parsed.data.agent !== undefined) q = q.where("agent", "=", parsed.data.agent);
    const rows = (await q.orderBy("id", "desc").limit(LOGS_MAX).execute()).reverse();
    const logs: ActivationLog[] = rows.map((r) => ({ agent: r.agent, step: r.step as ActivationLog["step"], ok: r.ok === 1, at: new Date(r.created_at).toISOString(), log: r.log }));
    return reply.send({ logs });
  });
}
