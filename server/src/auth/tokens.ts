/**
 * JWTs in attic's claim layout, HS256 or RS256, via jose. Tokens minted here also carry `jti`
 * and `iat` so they can be revoked one by one or per subject; attic's own tokens (without them)
 * still verify and can be revoked by subject.
 */
import { createPrivateKey, createPublicKey, createSecretKey, randomUUID, type KeyObject } from "node:crypto";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { JwtKey } from "../config/load.ts";
import { AGENT_GROUP_CLAIM, AGENT_GROUP_RE } from "../api/deploy-types.ts";
import { CACHE_PATTERN_RE, claimFromGrants, CLAIM_NAMESPACE, grantsFromClaim, NO_PERMISSIONS, type Grants, type PermissionName, type Permissions } from "./permissions.ts";

export interface TokenClaims {
  sub: string;
  exp: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  caches: Grants;
  /** The deploy-agent group the token acts for (AGENT_GROUP_CLAIM); only valid group names count. */
  agentGroup?: string;
}

export class TokenError extends Error {}

export interface TokenKeys {
  alg: "HS256" | "RS256";
  verifyKey: KeyObject;
  signKey: KeyObject | undefined;
  issuer: string | undefined;
  audiences: string[] | undefined;
}

export function tokenKeys(key: JwtKey, issuer?: string, audiences?: string[]): TokenKeys {
  if (key.alg === "HS256") {
    const k = createSecretKey(Buffer.from(key.secret));
    return { alg: "HS256", verifyKey: k, signKey: k, issuer, audiences };
  }
  const signKey = key.privatePem !== undefined ? createPrivateKey(key.privatePem) : undefined;
  const verifyKey = signKey ? createPublicKey(signKey) : createPublicKey(key.publicPem as string);
  return { alg: "RS256", verifyKey, signKey, issuer, audiences };
}

export async function verifyToken(keys: TokenKeys, token: string, nowSeconds = Math.floor(Date.now() / 1000)): Promise<TokenClaims> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, keys.verifyKey, {
      algorithms: [keys.alg],
      currentDate: new Date(nowSeconds * 1000),
      ...(keys.issuer !== undefined && { issuer: keys.issuer }),
      ...(keys.audiences !== undefined && { audience: keys.audiences }),
    }));
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) throw new TokenError("token expired");
    if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw new TokenError("token signature is invalid");
    if (e instanceof joseErrors.JWTClaimValidationFailed) throw new TokenError(`token claim "${e.claim}" is not acceptable`);
    if (e instanceof joseErrors.JOSEAlgNotAllowed) throw new TokenError("token uses an algorithm this server does not accept");
    throw new TokenError("token is malformed");
  }
  if (typeof payload.sub !== "string") throw new TokenError("token has no subject");
  if (typeof payload.exp !== "number") throw new TokenError("token has no expiry");
  const ns = Object.hasOwn(payload, CLAIM_NAMESPACE) ? payload[CLAIM_NAMESPACE] : undefined;
  const caches = grantsFromClaim(typeof ns === "object" && ns !== null && Object.hasOwn(ns, "caches") ? (ns as { caches: unknown }).caches : undefined);
  const group = Object.hasOwn(payload, AGENT_GROUP_CLAIM) ? payload[AGENT_GROUP_CLAIM] : undefined;
  return {
    sub: payload.sub,
    exp: payload.exp,
    ...(typeof group === "string" && AGENT_GROUP_RE.test(group) && { agentGroup: group }),
    ...(typeof payload.nbf === "number" && { nbf: payload.nbf }),
    ...(typeof payload.iat === "number" && { iat: payload.iat }),
    ...(typeof payload.jti === "string" && { jti: payload.jti }),
    caches,
  };
}

export interface MintRequest {
  sub: string;
  validitySeconds: number;
  grants: Partial<Record<PermissionName, string[]>>;
  agentGroup?: string;
}

export function buildClaims(req: MintRequest, nowSeconds = Math.floor(Date.now() / 1000)): Record<string, unknown> {
  const grants = new Map<string, Permissions>();
  for (const [perm, patterns] of Object.entries(req.grants) as [PermissionName, string[]][]) {
    for (const pattern of patterns) {
      if (!CACHE_PATTERN_RE.test(pattern)) throw new TokenError(`"${pattern}" is not a valid cache name pattern`);
      const p = grants.get(pattern) ?? { ...NO_PERMISSIONS };
      p[perm] = true;
      grants.set(pattern, p);
    }
  }
  const caches = claimFromGrants(grants);
  return {
    sub: req.sub,
    exp: nowSeconds + req.validitySeconds,
    nbf: nowSeconds,
    iat: nowSeconds,
    jti: randomUUID(),
    [CLAIM_NAMESPACE]: { caches },
    ...(req.agentGroup !== undefined && { [AGENT_GROUP_CLAIM]: req.agentGroup }),
  };
}

export async function signClaims(keys: TokenKeys, claims: Record<string, unknown>): Promise<string> {
  if (!keys.signKey) throw new TokenError("this server only has the RS256 public key and cannot mint tokens");
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: keys.alg, typ: "JWT" });
  if (keys.issuer !== undefined) jwt = jwt.setIssuer(keys.issuer);
  if (keys.audiences?.[0] !== undefined) jwt = jwt.setAudience(keys.audiences[0]);
  return jwt.sign(keys.signKey);
}
