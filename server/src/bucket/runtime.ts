/** What publishing and removal share: the database, storage, the bucket, the lock, and the prefix rule. */
import type { Db } from "../db/connect.ts";
import type { CacheRow } from "../db/caches.ts";
import type { Config } from "../config/load.ts";
import type { StoragePool } from "../storage/pool.ts";
import { layoutPrefix } from "./keys.ts";
import { layoutLocks, type LockMode } from "./lock.ts";
import type { LayoutTarget } from "./target.ts";

/** Called before every bucket write and delete; tests stop a run there to play a crash. */
export type LayoutCheckpoint = (step: string, key: string) => Promise<void> | void;

export interface LayoutRuntime {
  readonly db: Db;
  /** Where larder's own NARs and logs are (a row names its backend). */
  readonly pool: StoragePool;
  readonly target: LayoutTarget;
  locked<T>(cacheId: number, mode: LockMode, fn: (db: Db) => Promise<T>): Promise<T>;
  /** Where the cache's layout belongs, or undefined when it should have none (private, switched off, destroyed). */
  prefixOf(cache: CacheRow | undefined): string | undefined;
  /** The bucket and key of a stored NAR when the target can copy it server-side. */
  copySource(backend: string, storageKey: string): { bucket: string; key: string } | undefined;
  checkpoint: LayoutCheckpoint;
  /** Runs `fn` once per key at a time in this process; concurrent callers share its result. */
  once(key: string, fn: () => Promise<boolean>): Promise<boolean>;
}

export function createRuntime(db: Db, pool: StoragePool, layout: Config["bucketLayout"], target: LayoutTarget, checkpoint?: LayoutCheckpoint): LayoutRuntime {
  const running = new Map<string, Promise<boolean>>();
  const t = layout.target;
  // Same endpoint, so the target's client reaches the storage bucket; a CopyObject refused for lack of access falls back to streaming.
  const copyable = (backend: string) => {
    const c = pool.get(backend).config.storage;
    return c.type === "s3" && t !== undefined && c.endpoint === t.endpoint ? c : undefined;
  };
  return {
    db,
    pool,
    target,
    locked: layoutLocks(db),
    prefixOf: (cache) =>
      cache !== undefined && cache.deleted_at === null && cache.is_public === 1 && cache.bucket_layout === 1 ? layoutPrefix(layout.prefix, cache.name) : undefined,
    copySource: (backend, key) => {
      const c = copyable(backend);
      return c ? { bucket: c.bucket, key: c.prefix ? `${c.prefix}/${key}` : key } : undefined;
    },
    checkpoint: checkpoint ?? (() => {}),
    once(key, fn) {
      const existing = running.get(key);
      if (existing) return existing;
      const p = fn().finally(() => running.delete(key));
      running.set(key, p);
      return p;
    },
  };
}
