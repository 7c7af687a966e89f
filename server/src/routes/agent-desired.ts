/**
 * GET /_api/v1/agent/{cache}/{env}/desired?agent=&after=&wait= — an agent's long poll for what
 * it should run (api/deploy-types.ts). Answers at once when the environment moved past `after`,
 * otherwise when it moves or `wait` seconds pass. Each poll also counts as the agent's heartbeat.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { AGENT_NAME_RE } from "../api/deploy-types.ts";
import { requireAgent } from "../deploy/access.ts";
import { currentDeployment, ensureEnvironment, findEnvironment, touchAgent } from "../deploy/store.ts";
import { desiredFor } from "../deploy/desired.ts";
import { deployWatch } from "../deploy/watch.ts";
import { substituterEndpoint } from "../http/endpoints.ts";
import { cachePublicKey } from "../narinfo-view.ts";

const query = z.object({
  agent: z.string().regex(AGENT_NAME_RE, "must be 1–63 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
  after: z.coerce.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).default(-1),
  wait: z.coerce.number().int().min(0).max(60).default(0),
});

export function registerAgentDesired(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string; env: string } }>("/_api/v1/agent/:cache/:env/desired", async (req, reply) => {
    const { cache, group } = await requireAgent(ctx, req, req.params.cache, req.params.env);
    const parsed = query.safeParse(req.query);
    if (!parsed.success) throw badRequest(`invalid query: ${describeZodError(parsed.error)}`);
    const { agent: name, after, wait } = parsed.data;
    const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
    await touchAgent(ctx.db.kysely, env.id, name, group, Date.now());
    if (env.generation <= after && wait > 0) {
      const gone = new AbortController();
      reply.raw.once("close", () => gone.abort());
      await deployWatch(ctx).wait(env.id, after, wait * 1000, gone.signal);
    }
    const fresh = (await findEnvironment(ctx.db.kysely, cache.id, req.params.env)) ?? env;
    const d = await currentDeployment(ctx.db.kysely, fresh);
    const agent = await ctx.db.kysely.selectFrom("deploy_agent").selectAll().where("environment_id", "=", fresh.id).where("name", "=", name).executeTakeFirstOrThrow();
    return reply.send(desiredFor(fresh.generation, d, agent, { url: substituterEndpoint(ctx.config, req, cache.name), publicKey: cachePublicKey(cache) }));
  });
}
