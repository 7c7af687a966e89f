/**
 * What reads write, kept off the request path: last-access times for retention (narinfo and NAR
 * hits, paths get-missing-paths reported present) and the signatures made on a path's first
 * read. Requests only mark them in memory; a timer writes each batch in a few statements, the
 * signatures in one transaction (a commit per first read cost more than the read; bench). A
 * signature lost with the process is made again on the next read.
 */
import type { Db } from "./db/connect.ts";
import { touchCacheNars, touchObjectIds } from "./db/access.ts";
import { saveSignatures } from "./db/objects.ts";

export interface AccessTracker {
  /** A narinfo hit. */
  touch(objectId: number): void;
  /** A NAR download from a cache. */
  touchNar(cacheId: number, narId: number): void;
  /** A signature made for a path's narinfo with the cache's key of `keyVersion`, to keep. */
  signed(objectId: number, signature: string, keyVersion: number): void;
  flush(): Promise<void>;
  stop(): Promise<void>;
}

const MAX_PENDING = 1_000_000;

export function createAccessTracker(db: Db, intervalMs = 10_000, onError: (e: unknown) => void = () => {}): AccessTracker {
  let objects = new Set<number>();
  let nars = new Map<number, Set<number>>();
  let signatures = new Map<number, { signature: string; keyVersion: number }>();
  let pending = 0;
  // Flushes run one after another, and a flush resolves only once every mark made before it is
  // written — including those a timer flush already took and is still writing. Otherwise a caller
  // that flushes before deciding (GC reading access times) could read ahead of those writes.
  let writing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    writing = writing.then(write);
    return writing;
  };
  const write = async () => {
    if (pending === 0) return;
    const ids = [...objects];
    const byCache = nars;
    const signed = signatures;
    objects = new Set();
    nars = new Map();
    signatures = new Map();
    pending = 0;
    const now = Date.now();
    try {
      if (signed.size > 0) await saveSignatures(db, signed);
    } catch (e) {
      onError(e);
    }
    try {
      await touchObjectIds(db, ids, now);
      for (const [cacheId, narIds] of byCache) await touchCacheNars(db, cacheId, [...narIds], now);
    } catch (e) {
      onError(e);
    }
  };
  const timer = setInterval(() => void flush(), intervalMs);
  timer.unref();
  return {
    touch(id) {
      if (pending >= MAX_PENDING || objects.has(id)) return;
      objects.add(id);
      pending++;
    },
    touchNar(cacheId, narId) {
      if (pending >= MAX_PENDING) return;
      let set = nars.get(cacheId);
      if (!set) nars.set(cacheId, (set = new Set()));
      if (set.has(narId)) return;
      set.add(narId);
      pending++;
    },
    signed(objectId, signature, keyVersion) {
      if (pending >= MAX_PENDING) return;
      if (!signatures.has(objectId)) pending++;
      signatures.set(objectId, { signature, keyVersion });
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
