/** The bucket layout as the rest of the server sees it (kept apart so type-only users load nothing else). */
import type { CacheRow } from "../db/caches.ts";

export interface SyncStats {
  caches: number;
  removed: number;
  published: number;
  /** Entries that could not be written now (a reference missing from the cache, a bucket error). */
  pending: number;
}

export interface BucketLayout {
  /** A path was committed in `cache` (its narinfo is served by larderd now). Never throws, never waits. */
  pathVisible(cache: CacheRow, storePathHash: string): void;
  logVisible(cache: CacheRow, drvName: string): void;
  realisationVisible(cache: CacheRow, drvOutput: string): void;
  /** The cache's settings changed (public, bucket_layout, key, priority) or it was destroyed: reconcile it soon. */
  cacheChanged(cacheId: number): void;
  /** Reconciles one cache's layout (by id), or every layout. */
  sync(cacheId?: number): Promise<SyncStats>;
  /** Resolves once queued work has finished (tests, shutdown). */
  idle(): Promise<void>;
}
