/**
 * Who may do what to an environment. Operators need `deploy` on the cache (reading status also
 * with `pull`, but from the token itself: a public cache's anonymous pull shows no fleet). Agents
 * need `agent` and act only for the group their token names.
 */
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache, unauthorized, type CacheAccess } from "../http/cache-access.ts";
import { AGENT_NAME_RE, ENVIRONMENT_NAME_RE } from "../api/deploy-types.ts";

export function assertEnvironmentName(name: string): void {
  if (!ENVIRONMENT_NAME_RE.test(name)) throw badRequest(`invalid environment name "${name.slice(0, 60)}": use 1–50 of a-z 0-9 _ -, starting with a letter or digit`);
}

export function assertAgentName(name: unknown): string {
  if (typeof name !== "string" || !AGENT_NAME_RE.test(name)) throw badRequest(`invalid agent name: use 1–63 of A-Z a-z 0-9 . _ -, starting with a letter or digit`);
  return name;
}

export async function requireDeployer(ctx: AppContext, req: FastifyRequest, cacheName: string, envName: string): Promise<CacheAccess> {
  const access = await requireCache(ctx, req, cacheName, "deploy");
  assertEnvironmentName(envName);
  return access;
}

export async function requireDeployReader(ctx: AppContext, req: FastifyRequest, cacheName: string, envName?: string): Promise<CacheAccess> {
  const access = await requireCache(ctx, req, cacheName, ["deploy", "pull"]);
  const own = access.caller.permissionsFor(cacheName);
  if (!own.deploy && !own.pull) throw unauthorized(access.caller, cacheName);
  if (envName !== undefined) assertEnvironmentName(envName);
  return access;
}

export interface AgentAccess extends CacheAccess {
  group: string;
}

export async function requireAgent(ctx: AppContext, req: FastifyRequest, cacheName: string, envName: string): Promise<AgentAccess> {
  const access = await requireCache(ctx, req, cacheName, "agent");
  const group = access.caller.claims?.agentGroup;
  if (group === undefined) throw new ServerError("AccessError", `Access error: this agent token names no agent group; mint agent tokens with make-token --agent PATTERN --agent-group NAME.`);
  assertEnvironmentName(envName);
  return { ...access, group };
}
