/**
 * Last-access times for retention, recorded off the request path: narinfo and NAR hits only mark
 * ids in memory, and a timer writes each batch in a few statements.
 */
import type { Db } from "./db/connect.ts";
import { touchCacheNars, touchObjectIds } from "./db/access.ts";

export interface AccessTracker {
  /** A narinfo hit. */
  touch(objectId: number): void;
  /** A NAR download from a cache. */
  touchNar(cacheId: number, narId: number): void;
  flush(): Promise<void>;
  stop(): Promise<void>;
}

const MAX_PENDING = 1_000_000;

export function createAccessTracker(db: Db, intervalMs = 10_000, onError: (e: unknown) => void = () => {}): AccessTracker {
  let objects = new Set<number>();
  let nars = new Map<number, Set<number>>();
  let pending = 0;
  const flush = async () => {
    if (pending === 0) return;
    const ids = [...objects];
    const byCache = nars;
    objects = new Set();
    nars = new Map();
    pending = 0;
    const now = Date.now();
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
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
