/**
 * Where plain Nix pushes: the cache's URL with PUSH_PREFIX in front of the cache name. Cache names
 * start with a letter or digit, so the prefix never names a cache.
 */
export const PUSH_PREFIX = "/_push";

/** The URL to `nix copy --to` for the cache whose substituter URL is `cacheUrl` (no trailing slash). */
export function pushUrlOf(cacheUrl: string): string {
  const u = new URL(cacheUrl);
  const path = u.pathname.replace(/\/+$/, "");
  const cut = path.lastIndexOf("/");
  u.pathname = `${path.slice(0, cut)}${PUSH_PREFIX}${path.slice(cut)}`;
  return u.toString().replace(/\/$/, "");
}
