/**
 * Finds the cache a request names and checks the caller's permission on it, answering as attic
 * does: a caller with no permission at all on a cache gets 401 whether or not it exists (a
 * stranger cannot tell a private cache from a missing one); a caller with some permission gets
 * 404 NoSuchCache or 403 AccessError.
 */
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.ts";
import type { CacheRow } from "../db/caches.ts";
import { ServerError } from "../errors.ts";
import { canDiscover, isValidCacheName, type PermissionName, type Permissions } from "../auth/permissions.ts";
import { caller, type Caller } from "./caller.ts";

export interface CacheAccess {
  cache: CacheRow;
  caller: Caller;
  permissions: Permissions;
}

export function unauthorized(c: Caller): ServerError {
  return new ServerError("Unauthorized", c.tokenProblem ? `Unauthorized: ${c.tokenProblem}.` : "Unauthorized.");
}

export function assertCacheName(name: string): void {
  if (!isValidCacheName(name)) {
    throw new ServerError("InvalidCacheName", `Invalid cache name "${name.slice(0, 60)}": use 1–50 of A-Z a-z 0-9 - _ +, starting with a letter or digit.`);
  }
}

export async function requireCache(ctx: AppContext, req: FastifyRequest, name: string, need: PermissionName): Promise<CacheAccess> {
  assertCacheName(name);
  const c = await caller(ctx, req);
  const permissions = c.permissionsFor(name);
  const cache = await ctx.caches.get(name);
  if (cache?.is_public) permissions.pull = true;
  if (!cache) throw canDiscover(permissions) ? new ServerError("NoSuchCache") : unauthorized(c);
  if (!permissions[need]) {
    throw canDiscover(permissions) ? new ServerError("AccessError", `Access error: this token lacks the "${need}" permission on cache "${name}".`) : unauthorized(c);
  }
  return { cache, caller: c, permissions };
}
