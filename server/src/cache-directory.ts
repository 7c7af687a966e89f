/**
 * Cache rows by name, memoised for a moment: every narinfo request needs its cache, and a query
 * per request for data that changes a few times a year is waste. Writes through this process
 * invalidate at once; other api-servers see a change within `ttlMs`.
 */
import type { Db } from "./db/connect.ts";
import { getCache, type CacheRow } from "./db/caches.ts";

export interface CacheDirectory {
  get(name: string): Promise<CacheRow | undefined>;
  /** What `get` would answer from memory right now: the row, null for "no such cache", undefined when it must ask the database. */
  peek(name: string): CacheRow | null | undefined;
  invalidate(name?: string): void;
}

export interface CacheDirectoryOptions {
  ttlMs?: number;
  /** Called on every invalidation, for what is derived from cache rows. */
  onInvalidate?: () => void;
}

export function createCacheDirectory(db: Db, opts: CacheDirectoryOptions = {}): CacheDirectory {
  const ttlMs = opts.ttlMs ?? 2000;
  const entries = new Map<string, { row: CacheRow | undefined; at: number }>();
  // A lookup that was running when an invalidation came must not store the row it read before.
  let generation = 0;
  return {
    async get(name) {
      const hit = entries.get(name);
      const now = Date.now();
      if (hit && now - hit.at < ttlMs) return hit.row;
      const started = generation;
      const row = await getCache(db, name);
      if (started !== generation) return row;
      if (entries.size > 10_000) entries.clear();
      entries.set(name, { row, at: now });
      return row;
    },
    peek(name) {
      const hit = entries.get(name);
      if (hit === undefined || Date.now() - hit.at >= ttlMs) return undefined;
      return hit.row ?? null;
    },
    invalidate(name) {
      generation++;
      opts.onInvalidate?.();
      if (name === undefined) entries.clear();
      else entries.delete(name);
    },
  };
}
