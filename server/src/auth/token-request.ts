/**
 * What a token may be minted with — one rule set for `larderd make-token` and the operator's
 * `just token` (scripts/src/make-token.ts), which checks a request here before asking the host:
 * the same flags, the same duration parser, the same refusals.
 */
import { DurationError, parseDuration } from "../util/duration.ts";
import { CACHE_PATTERN_RE, type PermissionName } from "./permissions.ts";
import { AGENT_GROUP_RE } from "../api/deploy-types.ts";

/** make-token's permission flags (attic's `atticadm make-token` names), in help order. */
export const PERMISSION_FLAGS: readonly (readonly [flag: string, permission: PermissionName, help: string])[] = [
  ["pull", "pull", "pull from caches matching the pattern"],
  ["push", "push", "push to caches matching the pattern"],
  ["delete", "delete", "delete paths from caches matching the pattern"],
  ["create-cache", "createCache", "create caches matching the pattern"],
  ["configure-cache", "configureCache", "configure caches matching the pattern"],
  ["configure-cache-retention", "configureCacheRetention", "change retention of caches matching the pattern"],
  ["destroy-cache", "destroyCache", "destroy caches matching the pattern"],
  ["deploy", "deploy", "start, pause, resume and roll back deployments on caches matching the pattern"],
  ["agent", "agent", "run deploy agents of --agent-group on caches matching the pattern"],
];

export interface TokenRequest {
  sub: string;
  /** A duration as attic's `--validity` takes it: "30d", "3 months", "1y 6 months". */
  validity: string;
  /** Patterns per permission. */
  grants: ReadonlyMap<PermissionName, readonly string[]>;
  /** The deploy-agent group an `agent` token acts for; required with `agent`, refused without. */
  agentGroup?: string;
}

export interface CheckedTokenRequest {
  sub: string;
  validitySeconds: number;
  grants: Partial<Record<PermissionName, string[]>>;
  agentGroup?: string;
}

export class TokenRequestError extends Error {}

export function checkTokenRequest(r: TokenRequest): CheckedTokenRequest {
  if (r.sub.trim() === "") throw new TokenRequestError("--sub is empty: say who the token is for (its sub claim)");
  let validitySeconds: number;
  try {
    validitySeconds = parseDuration(r.validity);
  } catch (e) {
    if (e instanceof DurationError) throw new TokenRequestError(`--validity: ${e.message}`);
    throw e;
  }
  if (validitySeconds <= 0) throw new TokenRequestError(`--validity "${r.validity}" is zero; give a lifetime such as "30d" or "1y"`);
  const grants: Partial<Record<PermissionName, string[]>> = {};
  let count = 0;
  for (const [flag, permission] of PERMISSION_FLAGS) {
    const patterns = r.grants.get(permission) ?? [];
    for (const pattern of patterns) {
      if (!CACHE_PATTERN_RE.test(pattern)) {
        throw new TokenRequestError(`--${flag} "${pattern}" is not a cache name pattern: 1–50 of A-Z a-z 0-9 - _ + *, starting with a letter, digit or *`);
      }
    }
    if (patterns.length > 0) {
      grants[permission] = [...patterns];
      count += patterns.length;
    }
  }
  // Such a token opens nothing; minting one is always a mistake in the flags.
  if (count === 0) throw new TokenRequestError(`the token would grant nothing: add at least one of ${PERMISSION_FLAGS.map(([f]) => `--${f}`).join(", ")} with a cache name pattern`);
  // One group per token, so a host's token can never act for another group's hosts.
  if (grants.agent !== undefined && r.agentGroup === undefined) throw new TokenRequestError("--agent needs --agent-group NAME: an agent token acts for exactly one agent group");
  if (r.agentGroup !== undefined) {
    if (grants.agent === undefined) throw new TokenRequestError("--agent-group is only meaningful with --agent PATTERN");
    if (!AGENT_GROUP_RE.test(r.agentGroup)) throw new TokenRequestError(`--agent-group "${r.agentGroup}" is not a group name: 1–50 of a-z 0-9 _ -, starting with a letter or digit`);
  }
  return { sub: r.sub, validitySeconds, grants, ...(r.agentGroup !== undefined && { agentGroup: r.agentGroup }) };
}
