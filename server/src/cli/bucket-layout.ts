/** `larderd bucket-layout sync [cache]`: reconciles public caches' bucket layouts with the database, as every GC run does. */
import { pino } from "pino";
import type { Config } from "../config/load.ts";
import { openDb } from "../db/connect.ts";
import { getCache } from "../db/caches.ts";
import { openStoragePool } from "../storage/pool.ts";
import { createBucketLayout } from "../bucket/layout.ts";
import type { SyncStats } from "../bucket/types.ts";

export async function syncBucketLayout(config: Config, cacheName: string | undefined): Promise<SyncStats> {
  const db = await openDb(config.database);
  try {
    await db.migrate();
    // Warnings (entries that failed) go to stderr; stdout carries the counts.
    const log = pino({ level: config.logLevel }, pino.destination({ dest: 2, sync: true }));
    const pool = await openStoragePool(config.storageSetup, { db, log });
    const layout = createBucketLayout({ db, pool, layout: config.bucketLayout, log });
    if (!layout) throw new Error("this server has no bucket for layouts: set bucket-layout.bucket in server.toml (or use S3 storage)");
    let id: number | undefined;
    if (cacheName !== undefined) {
      const cache = await getCache(db, cacheName);
      if (!cache) throw new Error(`no cache named "${cacheName}"`);
      id = cache.id;
    }
    return await layout.sync(id);
  } finally {
    await db.close();
  }
}
