/**
 * attic's permission model: a token maps cache-name patterns to permission sets; an exact name
 * beats any pattern, otherwise the first matching pattern (in the token's order) applies, and
 * sets from several patterns are never merged.
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
} as const;

export type PermissionName = keyof typeof PERMISSION_KEYS;
export type Permissions = Record<PermissionName, boolean>;
export type CachePatterns = Record<string, Partial<Record<(typeof PERMISSION_KEYS)[PermissionName], number>>>;

export const NO_PERMISSIONS: Permissions = Object.freeze({
  pull: false, push: false, delete: false, createCache: false, configureCache: false, configureCacheRetention: false, destroyCache: false,
});

export const CACHE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9\-_+]{0,49}$/;
export const CACHE_PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/;

export function isValidCacheName(name: string): boolean {
  return CACHE_NAME_RE.test(name);
}

const patternCache = new Map<string, RegExp>();
function patternRegExp(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (!re) {
    re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[+\-]/g, "\\$&")).join(".*")}$`);
    if (patternCache.size > 10_000) patternCache.clear();
    patternCache.set(pattern, re);
  }
  return re;
}

function toPermissions(set: CachePatterns[string]): Permissions {
  const p = { ...NO_PERMISSIONS };
  for (const [name, key] of Object.entries(PERMISSION_KEYS) as [PermissionName, string][]) {
    p[name] = (set as Record<string, number | undefined>)[key] === 1;
  }
  return p;
}

export function permissionsFor(patterns: CachePatterns, cacheName: string): Permissions {
  const exact = patterns[cacheName];
  if (exact) return toPermissions(exact);
  for (const [pattern, set] of Object.entries(patterns)) {
    if (CACHE_PATTERN_RE.test(pattern) && patternRegExp(pattern).test(cacheName)) return toPermissions(set);
  }
  return { ...NO_PERMISSIONS };
}

/** Any permission at all on a cache lets the caller learn whether it exists. */
export function canDiscover(p: Permissions): boolean {
  return Object.values(p).some(Boolean);
}
