/**
 * Where plain Nix pushes: PUSH_PREFIX, then the cache name (routes/index.ts says why). Cache names
 * start with a letter or digit, so the prefix never names a cache.
 */
export const PUSH_PREFIX = "/_push";
