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

/**
 * Why a caller gets 401, in words that point the right way: the token's problem (expired,
 * invalid, revoked), no token at all, or a valid token whose patterns do not cover the cache
 * (named, so the user sees which token they hold). The same text whether or not the cache exists.
 */
export function unauthorized(c: Caller, cacheName?: string): ServerError {
  if (c.tokenProblem) return new ServerError("Unauthorized", `Unauthorized: ${c.tokenProblem}.`);
  if (!c.claims) return new ServerError("Unauthorized", "Unauthorized: no token sent.");
  const patterns = [...c.claims.caches.keys()];
  const listed = patterns.slice(0, 10).map((p) => `"${p}"`).join(", ") + (patterns.length > 10 ? ", …" : "");
  const what = cacheName === undefined ? "this request" : `cache "${cacheName}"`;
  return new ServerError(
    "Unauthorized",
    patterns.length === 0
      ? `Unauthorized: this token grants no permission on any cache.`
      : `Unauthorized: this token grants nothing on ${what}; it covers ${listed}.`,
  );
}

/** A permission as make-token's flag names it ("createCache" → "create-cache"). */
export function permissionFlag(p: PermissionName): string {
  return p.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function accessError(need: PermissionName, cacheName: string): ServerError {
  return new ServerError("AccessError", `Access error: this token lacks the "${permissionFlag(need)}" permission on cache "${cacheName}".`);
}

export function assertCacheName(name: string): void {
  if (!isValidCacheName(name)) {
    throw new ServerError("InvalidCacheName", `Invalid cache name "${name.slice(0, 60)}": use 1–50 of A-Z a-z 0-9 - _ +, starting with a letter or digit.`);
  }
}

/** `need`: the permission required, or a list of which any one will do (the first is named in a 403). */
export async function requireCache(ctx: AppContext, req: FastifyRequest, name: string, need: PermissionName | readonly PermissionName[]): Promise<CacheAccess> {
  assertCacheName(name);
  const c = await caller(ctx, req);
  const permissions = c.permissionsFor(name);
  const cache = await ctx.caches.get(name);
  if (cache?.is_public) permissions.pull = true;
  if (!cache) throw canDiscover(permissions) ? new ServerError("NoSuchCache") : unauthorized(c, name);
  const needs = typeof need === "string" ? [need] : need;
  if (!needs.some((n) => permissions[n])) {
    // A public cache's implicit pull must not make the answer blame a missing permission when
    // the token (or its absence, or its scope) is the problem.
    if (!c.claims || !canDiscover(c.permissionsFor(name))) throw unauthorized(c, name);
    throw accessError(needs[0] as PermissionName, name);
  }
  return { cache, caller: c, permissions };
}
