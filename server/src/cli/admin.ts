/** Admin subcommands of larderd that act on the config and database directly. */
import type { Config } from "../config/load.ts";
import { buildClaims, signClaims, tokenKeys } from "../auth/tokens.ts";
import { checkTokenRequest, type TokenRequest } from "../auth/token-request.ts";
import { openDb } from "../db/connect.ts";
import { createCache } from "../db/caches.ts";
import { createRevocations } from "../auth/revocations.ts";
import { formatPublicKey, formatSecretKey, generateSecretKey, publicKeyOf } from "../nix/signing.ts";
import { isValidCacheName } from "../auth/permissions.ts";
import { ServerError } from "../errors.ts";

export interface MakeTokenOptions extends TokenRequest {
  dumpClaims?: boolean;
}

/** Mints a token by the rules `just token` checks too (auth/token-request.ts). */
export async function makeToken(config: Config, o: MakeTokenOptions): Promise<string> {
  const checked = checkTokenRequest(o);
  const claims = buildClaims(checked);
  if (o.dumpClaims) return JSON.stringify(claims, null, 2);
  return signClaims(tokenKeys(config.jwt.key, config.jwt.issuer, config.jwt.audiences), claims);
}

export interface CreateCacheOptions {
  name: string;
  isPublic: boolean;
  priority: number;
  storeDir: string;
  upstreamCacheKeyNames: string[];
}

export async function createCacheCommand(config: Config, o: CreateCacheOptions): Promise<string> {
  if (!isValidCacheName(o.name)) throw new Error(`invalid cache name "${o.name}": use 1–50 of A-Z a-z 0-9 - _ +, starting with a letter or digit`);
  const db = await openDb(config.database);
  try {
    await db.migrate();
    const sk = generateSecretKey(o.name);
    try {
      await createCache(db, { name: o.name, keypair: formatSecretKey(sk), isPublic: o.isPublic, storeDir: o.storeDir, priority: o.priority, upstreamCacheKeyNames: o.upstreamCacheKeyNames, retentionPeriod: null });
    } catch (e) {
      if (e instanceof ServerError && e.kind === "CacheAlreadyExists") throw new Error(`cache "${o.name}" already exists`);
      throw e;
    }
    return formatPublicKey(publicKeyOf(sk));
  } finally {
    await db.close();
  }
}

export async function revokeTokenCommand(config: Config, o: { jti?: string; sub?: string }): Promise<string> {
  if ((o.jti === undefined) === (o.sub === undefined)) throw new Error("give exactly one of --jti ID or --sub SUBJECT");
  const db = await openDb(config.database);
  try {
    await db.migrate();
    const revocations = createRevocations(db);
    if (o.jti !== undefined) {
      await revocations.revokeJti(o.jti);
      return `revoked token ${o.jti}`;
    }
    await revocations.revokeSubject(o.sub as string);
    return `revoked every token of subject "${o.sub}" issued before now`;
  } finally {
    await db.close();
  }
}
