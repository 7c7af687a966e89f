/**
 * attic's permission model: a token maps cache-name patterns to permission sets; an exact name
 * beats any pattern, otherwise the first matching pattern (in the token's order) applies, and
 * sets from several patterns are never merged.
 *
 * Cache names come from requests, so they only ever key Maps: a plain object would answer
 * `constructor` or `toString` from its prototype.
 */
export const CLAIM_NAMESPACE = "https://jwt.attic.rs/v1";

/** attic's claim keys, each 0/1 in the token. */
export const PERMISSION_KEYS = {
  pull: "r",
  push: "w",
  delete: "d",
  createCache: "cc",
  configureCache: "cr",
  configureCacheRetention: "cq",
  destroyCache: "cd",
  // larder's own: attic ignores keys it does not know, so its tokens and ours still read alike.
  /** Start, pause, resume and roll back deployments (`larder deploy`). */
  deploy: "dp",
  /** Act as a deploy agent of the group named in the token's AGENT_GROUP_CLAIM (`larder agent`). */
  agent: "ag",
} as const;

export type PermissionName = keyof typeof PERMISSION_KEYS;
export type Permissions = Record<PermissionName, boolean>;
/** A token's grants: pattern → permissions, in the token's order. */
export type Grants = ReadonlyMap<string, Readonly<Permissions>>;

const PERMISSION_ENTRIES = Object.entries(PERMISSION_KEYS) as [PermissionName, string][];

export const NO_PERMISSIONS: Permissions = Object.freeze({
  pull: false, push: false, delete: false, createCache: false, configureCache: false, configureCacheRetention: false, destroyCache: false, deploy: false, agent: false,
});

export const CACHE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$/;
export const CACHE_PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME_RE.test(name);
}

/**
 * Reads the `caches` claim of a verified token. Only the token's own members count, entries
 * that are not valid patterns or not objects grant nothing, and a permission is granted only by
 * the integer 1 (attic's `BoolFromInt`).
 */
export function grantsFromClaim(caches: unknown): Grants {
  const grants = new Map<string, Readonly<Permissions>>();
  if (typeof caches !== "object" || caches === null || Array.isArray(caches)) return grants;
  for (const [pattern, set] of Object.entries(caches)) {
    if (!CACHE_PATTERN_RE.test(pattern) || typeof set !== "object" || set === null) continue;
    const p = { ...NO_PERMISSIONS };
    for (const [name, key] of PERMISSION_ENTRIES) p[name] = Object.hasOwn(set, key) && (set as Record<string, unknown>)[key] === 1;
    grants.set(pattern, Object.freeze(p));
  }
  return grants;
}

/** The claim for a set of grants, as attic writes it (false permissions omitted). */
export function claimFromGrants(grants: Grants): Record<string, Record<string, 1>> {
  const entries: [string, Record<string, 1>][] = [];
  for (const [pattern, p] of grants) {
    const set: [string, 1][] = [];
    for (const [name, key] of PERMISSION_ENTRIES) if (p[name]) set.push([key, 1]);
    entries.push([pattern, Object.fromEntries(set) as Record<string, 1>]);
  }
  // fromEntries defines own properties, so even a "__proto__" key would be data, not a prototype.
  return Object.fromEntries(entries);
}

/**
 * Whether `name` matches `pattern`, where `*` matches any run of characters. Linear in the two
 * lengths: the pattern splits at `*` into literal pieces; the first must start the name, the
 * last must end it, and each middle piece is found left to right (the leftmost place is always
 * safe to take) with a KMP scan that never steps back in the name. A backtracking regex took
 * seconds for `a*a*a*…c` (issue 13.5). `count`, if given, receives the character comparisons.
 */
export function matchesPattern(pattern: string, name: string, count?: { steps: number }): boolean {
  const pieces = pattern.split("*");
  if (pieces.length === 1) return pattern === name;
  const first = pieces[0] as string;
  const last = pieces[pieces.length - 1] as string;
  if (first.length + last.length > name.length) return false;
  if (count) count.steps += first.length + last.length;
  if (!name.startsWith(first) || !name.endsWith(last)) return false;
  let from = first.length;
  const end = name.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i] as string;
    if (piece === "") continue;
    const at = indexOfKmp(name, piece, from, end, count);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

/** First index ≥ from where `piece` occurs wholly before `end`, or -1. */
function indexOfKmp(text: string, piece: string, from: number, end: number, count?: { steps: number }): number {
  const fail = new Int32Array(piece.length);
  let steps = 0;
  for (let i = 1, k = 0; i < piece.length; i++) {
    while (k > 0 && piece[i] !== piece[k]) {
      k = fail[k - 1] as number;
      steps++;
    }
    steps++;
    if (piece[i] === piece[k]) k++;
    fail[i] = k;
  }
  let found = -1;
  for (let i = from, k = 0; i < end; i++) {
    while (k > 0 && text[i] !== piece[k]) {
      k = fail[k - 1] as number;
      steps++;
    }
    steps++;
    if (text[i] === piece[k]) k++;
    if (k === piece.length) {
      found = i - piece.length + 1;
      break;
    }
  }
  if (count) count.steps += steps;
  return found;
}

export function permissionsFor(grants: Grants, cacheName: string): Permissions {
  const exact = grants.get(cacheName);
  if (exact) return { ...exact };
  for (const [pattern, p] of grants) {
    if (matchesPattern(pattern, cacheName)) return { ...p };
  }
  return { ...NO_PERMISSIONS };
}

/** Any permission at all on a cache lets the caller learn whether it exists. */
export function canDiscover(p: Permissions): boolean {
  return Object.values(p).some(Boolean);
}
