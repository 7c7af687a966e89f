/**
 * Who is calling: the token from `Authorization: Bearer …` (any case, as attic's client sends
 * `bearer`) or from HTTP Basic's password (what Nix sends from a netrc file). An invalid token
 * makes the caller anonymous, as in attic, but the reason is kept for the log and the 401 body,
 * because Nix reports a 401 as a plain miss and users debug from there.
 */
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.ts";
import { TokenError, verifyToken, type TokenClaims, type TokenKeys } from "../auth/tokens.ts";
import { canDiscover, NO_PERMISSIONS, permissionsFor, type Permissions } from "../auth/permissions.ts";

export interface Caller {
  claims: TokenClaims | undefined;
  /** Why a presented token was not accepted. */
  tokenProblem: string | undefined;
  permissionsFor(cacheName: string): Permissions;
}

const ANONYMOUS_NO_TOKEN: Caller = {
  claims: undefined,
  tokenProblem: undefined,
  permissionsFor: () => ({ ...NO_PERMISSIONS }),
};

function anonymous(problem: string): Caller {
  return { claims: undefined, tokenProblem: problem, permissionsFor: () => ({ ...NO_PERMISSIONS }) };
}

export function extractToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const space = header.indexOf(" ");
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === "bearer") return value;
  if (scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The caller, resolved at most once per request (decorated in app.ts). */
    larderCaller: Promise<Caller> | null;
  }
}

// Most narinfo requests carry no token (public caches): they share one settled answer.
const NO_TOKEN: Promise<Caller> = Promise.resolve(ANONYMOUS_NO_TOKEN);

// Verifying a token's signature and claims cost more than the narinfo lookup it guards (bench,
// docs/PERFORMANCE.md), and Nix sends the same token with every request: keep what verified,
// by its exact text, until it expires. Revocation is still checked on every request.
const VERIFIED_MAX = 10_000;
const verified = new Map<string, { keys: TokenKeys; claims: TokenClaims }>();

async function verifiedClaims(keys: TokenKeys, token: string): Promise<TokenClaims> {
  const now = Math.floor(Date.now() / 1000);
  const hit = verified.get(token);
  // The same bounds jose applies: valid while exp > now and nbf <= now.
  if (hit && hit.keys === keys && hit.claims.exp > now && (hit.claims.nbf ?? now) <= now) return hit.claims;
  const claims = await verifyToken(keys, token);
  if (verified.size >= VERIFIED_MAX) verified.clear();
  verified.set(token, { keys, claims });
  return claims;
}

async function resolve(ctx: AppContext, req: FastifyRequest): Promise<Caller> {
  const token = extractToken(req.headers.authorization);
  if (token === undefined || token === "") return ANONYMOUS_NO_TOKEN;
  let claims: TokenClaims;
  try {
    claims = await verifiedClaims(ctx.tokens, token);
  } catch (e) {
    const problem = e instanceof TokenError ? e.message : "token is malformed";
    req.log.info({ authFailure: problem }, "request token rejected; continuing as anonymous");
    return anonymous(problem);
  }
  if (await ctx.revocations.isRevoked(claims)) {
    req.log.info({ authFailure: "token revoked", sub: claims.sub }, "request token rejected; continuing as anonymous");
    return anonymous("token has been revoked");
  }
  return { claims, tokenProblem: undefined, permissionsFor: (name) => permissionsFor(claims.caches, name) };
}

/**
 * The caller as `caller` would resolve it, when that needs no token verification: no token, or a
 * token verified before and still within its times and not revoked (a promise when the
 * revocation list is due for its refresh). Undefined means "not for the fast path" (a new,
 * invalid, expired or revoked token): the framework path resolves it and logs what it must.
 */
export function settledCaller(ctx: AppContext, authorization: string | undefined): Caller | undefined | Promise<Caller | undefined> {
  if (authorization === undefined) return ANONYMOUS_NO_TOKEN;
  const token = extractToken(authorization);
  if (token === undefined || token === "") return ANONYMOUS_NO_TOKEN;
  const hit = verified.get(token);
  if (hit === undefined || hit.keys !== ctx.tokens) return undefined;
  const now = Math.floor(Date.now() / 1000);
  const claims = hit.claims;
  if (!(claims.exp > now && (claims.nbf ?? now) <= now)) return undefined;
  const accepted: Caller = { claims, tokenProblem: undefined, permissionsFor: (name) => permissionsFor(claims.caches, name) };
  const revoked = ctx.revocations.isRevokedNow(claims);
  if (revoked === false) return accepted;
  if (revoked === true) return undefined;
  // The list is due for its refresh: one query for every caller waiting on it, then the answer is known.
  return ctx.revocations.isRevoked(claims).then((r) => (r ? undefined : accepted));
}

export function caller(ctx: AppContext, req: FastifyRequest): Promise<Caller> {
  if (req.headers.authorization === undefined) return NO_TOKEN;
  // On the request itself rather than in a WeakMap keyed by it: a WeakMap entry per request
  // made every young-generation GC trace ephemerons (bench profile).
  let c = req.larderCaller;
  if (!c) {
    c = resolve(ctx, req);
    req.larderCaller = c;
  }
  return c;
}

export { canDiscover };
