/**
 * Last-access times for retention, recorded off the request path: hits only mark an id in
 * memory, and a timer writes the batch in one statement per 500 ids.
 */
import type { Db } from "./db/connect.ts";
import { touchObjects } from "./db/objects.ts";

export interface AccessTracker {
  touch(objectId: number): void;
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export function createAccessTracker(db: Db, intervalMs = 10_000, onError: (e: unknown) => void = () => {}): AccessTracker {
  let pending = new Set<number>();
  const flush = async () => {
    if (pending.size === 0) return;
    const ids = [...pending];
    pending = new Set();
    try {
      await touchObjects(db, ids);
    } catch (e) {
      onError(e);
    }
  };
  const timer = setInterval(() => void flush(), intervalMs);
  timer.unref();
  return {
    touch(id) {
      if (pending.size < 1_000_000) pending.add(id);
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
