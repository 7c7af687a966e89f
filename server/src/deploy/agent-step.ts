/**
 * What every agent write shares: the agent's token and group, a body checked against the
 * contract's schema, and one transaction holding the environment in which the agent is recorded
 * alive and the step decided. Wake-ups and metrics follow the commit.
 */
import type { FastifyRequest } from "fastify";
import type { z } from "zod";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { requireAgent } from "./access.ts";
import { ensureEnvironment, lockEnvironment, touchAgent, type AgentRow, type EnvRow, type Trx } from "./store.ts";
import { noEffects, type Effects } from "./rollout.ts";
import { deployWatch } from "./watch.ts";

export interface AgentStep<B> {
  /** The agent's cache, whose store directory every path it reports must be in. */
  storeDir: string;
  trx: Trx;
  env: EnvRow;
  agent: AgentRow;
  body: B;
  now: number;
  fx: Effects;
}

export async function agentStep<S extends z.ZodType<{ agent: string }>, T>(
  ctx: AppContext,
  req: FastifyRequest<{ Params: { cache: string; env: string } }>,
  schema: S,
  what: string,
  fn: (s: AgentStep<z.infer<S>>) => Promise<T>,
): Promise<T> {
  const { cache, group } = await requireAgent(ctx, req, req.params.cache, req.params.env);
  const parsed = schema.safeParse(req.body);
  if (!parsed.success) throw badRequest(`invalid ${what}: ${describeZodError(parsed.error)}`);
  const body = parsed.data;
  const env = await ensureEnvironment(ctx.db, cache.id, req.params.env);
  const fx = noEffects();
  const result = await lockEnvironment(ctx.db, env.id, async (trx, locked) => {
    const now = Date.now();
    const agent = await touchAgent(trx, locked.id, body.agent, group, now);
    return fn({ storeDir: cache.store_dir, trx, env: locked, agent, body, now, fx });
  });
  deployWatch(ctx).apply(env.id, fx);
  return result;
}
