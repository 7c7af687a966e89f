/**
 * Rendered narinfo answers (hits and misses), kept for about a second so the hot path skips the
 * database: the two lookups and SQLite's file locks were the largest cost of a narinfo request
 * after the socket write (bench, docs/PERFORMANCE.md).
 *
 * Invariant 1 (a narinfo is served only while its NAR is stored, and after GC only while every
 * reference is served) holds as follows:
 * - Writes through this process drop what they touch as soon as they are committed (narinfo PUT,
 *   upload-path and path delete drop the path; creating, configuring or destroying a cache drops
 *   everything; so does the in-process GC after each batch of deleted objects). A lookup that was
 *   already running when something was dropped does not store its answer (the generation check),
 *   so a read that raced a commit cannot put the old answer back.
 * - Writes by other processes (another api-server, a garbage-collector node, `larderd` admin
 *   commands) are seen within `ttlMs`. That window does not weaken invariant 1 beyond what a
 *   client already lives with: Nix reads a narinfo, then fetches its NAR and references later;
 *   a client that read the narinfo just before GC deleted the path is in exactly the position of
 *   one served from this cache just after. Either gets a 404 for the NAR and fails or falls back
 *   to another substituter; the cache only widens that race by at most `ttlMs`. GC deletes a
 *   closure from its top down, so a reference is never collected while a path that names it is
 *   still in the database; a cached referrer can outlive its references by at most `ttlMs`, as
 *   one fetched just before the run can.
 * - A cached miss hides a path pushed through another api-server for at most `ttlMs`; a path
 *   pushed through this process is visible to the next request.
 */
export interface CachedHit {
  /** The rendered narinfo, as sent. */
  readonly body: Buffer;
  readonly objectId: number;
  /** The signing key and version the text was signed with; a key change makes it stale. */
  readonly keypair: string;
  readonly keyVersion: number;
}

/** `null` is a cached miss. */
export type CachedAnswer = CachedHit | null;

export interface NarInfoCache {
  /** What is known for this path, or undefined when it has to be looked up. */
  get(cacheId: number, hash: string): CachedAnswer | undefined;
  /** Taken before a lookup and handed to `set`, which stores nothing if anything was dropped meanwhile. */
  ticket(): number;
  set(ticket: number, cacheId: number, hash: string, answer: CachedAnswer): void;
  /** Drops one path of a cache (written or deleted through this process). */
  invalidate(cacheId: number, hash: string): void;
  /** Drops everything (a cache's key or settings changed, GC deleted objects). */
  clear(): void;
}

export interface NarInfoCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  answer: CachedAnswer;
  at: number;
}

export function createNarInfoCache(opts: NarInfoCacheOptions = {}): NarInfoCache {
  const ttlMs = opts.ttlMs ?? 1000;
  const maxEntries = opts.maxEntries ?? 20_000;
  const now = opts.now ?? Date.now;
  // Two generations instead of evicting the oldest entry one at a time: deleting from the front
  // of a large Map left holes that every later `keys().next()` walked over (bench: first-time
  // misses cost 60% more CPU). When the young generation is full it becomes the old one and the
  // previous old one is dropped whole, so at most `maxEntries` are kept.
  const half = Math.max(1, Math.floor(maxEntries / 2));
  let young = new Map<string, Entry>();
  let old = new Map<string, Entry>();
  let generation = 0;

  return {
    get(cacheId, hash) {
      if (ttlMs <= 0) return undefined;
      const key = `${cacheId}/${hash}`;
      const e = young.get(key) ?? old.get(key);
      if (e === undefined || now() - e.at >= ttlMs) return undefined;
      return e.answer;
    },
    ticket() {
      return generation;
    },
    set(ticket, cacheId, hash, answer) {
      if (ttlMs <= 0 || maxEntries <= 0 || ticket !== generation) return;
      if (young.size >= half) {
        old = young;
        young = new Map();
      }
      young.set(`${cacheId}/${hash}`, { answer, at: now() });
    },
    invalidate(cacheId, hash) {
      generation++;
      const key = `${cacheId}/${hash}`;
      young.delete(key);
      old.delete(key);
    },
    clear() {
      generation++;
      young = new Map();
      old = new Map();
    },
  };
}
