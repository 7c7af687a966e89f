/**
 * Cache rows by name, memoised for a moment: every narinfo request needs its cache, and a query
 * per request for data that changes a few times a year is waste. Writes through this process
 * invalidate at once; other api-servers see a change within `ttlMs`.
 */
import type { Db } from "./db/connect.ts";
import { getCache, type CacheRow } from "./db/caches.ts";

export interface CacheDirectory {
  get(name: string): Promise<CacheRow | undefined>;
  invalidate(name?: string): void;
}

export function createCacheDirectory(db: Db, ttlMs = 2000): CacheDirectory {
  const entries = new Map<string, { row: CacheRow | undefined; at: number }>();
  return {
    async get(name) {
      const hit = entries.get(name);
      const now = Date.now();
      if (hit && now - hit.at < ttlMs) return hit.row;
      const row = await getCache(db, name);
      if (entries.size > 10_000) entries.clear();
      entries.set(name, { row, at: now });
      return row;
    },
    invalidate(name) {
      if (name === undefined) entries.clear();
      else entries.delete(name);
    },
  };
}
