/** Cache rows: create, read, configure, destroy. */
import type { Selectable } from "kysely";
import type { Db } from "./connect.ts";
import type { CacheTable } from "./schema.ts";
import { ServerError } from "../errors.ts";

export type CacheRow = Selectable<CacheTable>;

export interface NewCache {
  name: string;
  keypair: string;
  isPublic: boolean;
  storeDir: string;
  priority: number;
  upstreamCacheKeyNames: string[];
  retentionPeriod: number | null;
  bucketLayout?: boolean;
}

export async function getCache(db: Db, name: string): Promise<CacheRow | undefined> {
  return db.kysely.selectFrom("cache").selectAll().where("name", "=", name).where("deleted_at", "is", null).executeTakeFirst();
}

/**
 * Inside a transaction that writes to cache `id`: true if the cache still exists, and it stays
 * so until the transaction ends (on PostgreSQL a destroy waits for it; SQLite has one writer).
 */
export async function holdLiveCache(tx: Db, id: number): Promise<boolean> {
  let q = tx.kysely.selectFrom("cache").select("id").where("id", "=", id).where("deleted_at", "is", null);
  if (tx.dialect === "postgres") q = q.forShare();
  return (await q.executeTakeFirst()) !== undefined;
}

export async function listCaches(db: Db): Promise<CacheRow[]> {
  return db.kysely.selectFrom("cache").selectAll().where("deleted_at", "is", null).orderBy("name").execute();
}

/** Throws CacheAlreadyExists when the name is taken (soft-deleted names stay taken, as in attic). */
export async function createCache(db: Db, c: NewCache, now = Date.now()): Promise<void> {
  const result = await db.kysely
    .insertInto("cache")
    .values({
      name: c.name,
      keypair: c.keypair,
      key_version: 1,
      is_public: c.isPublic ? 1 : 0,
      store_dir: c.storeDir,
      priority: c.priority,
      upstream_cache_key_names: JSON.stringify(c.upstreamCacheKeyNames),
      retention_period: c.retentionPeriod,
      bucket_layout: c.bucketLayout === true ? 1 : 0,
      created_at: now,
      deleted_at: null,
    })
    .onConflict((oc) => oc.column("name").doNothing())
    .executeTakeFirst();
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) throw new ServerError("CacheAlreadyExists");
}

export interface CachePatch {
  keypair?: string;
  isPublic?: boolean;
  storeDir?: string;
  priority?: number;
  upstreamCacheKeyNames?: string[];
  retentionPeriod?: number | null;
  bucketLayout?: boolean;
}

export async function updateCache(db: Db, id: number, p: CachePatch): Promise<void> {
  const set: Partial<Record<keyof CacheTable, unknown>> = {};
  if (p.isPublic !== undefined) set.is_public = p.isPublic ? 1 : 0;
  if (p.storeDir !== undefined) set.store_dir = p.storeDir;
  if (p.priority !== undefined) set.priority = p.priority;
  if (p.upstreamCacheKeyNames !== undefined) set.upstream_cache_key_names = JSON.stringify(p.upstreamCacheKeyNames);
  if (p.retentionPeriod !== undefined) set.retention_period = p.retentionPeriod;
  if (p.bucketLayout !== undefined) set.bucket_layout = p.bucketLayout ? 1 : 0;
  let q = db.kysely.updateTable("cache").set(set as never).where("id", "=", id);
  if (p.keypair !== undefined) {
    q = q.set((eb) => ({ keypair: p.keypair as string, key_version: eb("key_version", "+", 1) }));
  }
  await q.execute();
}

/** Returns false when there was no such cache. */
export async function destroyCache(db: Db, id: number, soft: boolean, now = Date.now()): Promise<boolean> {
  if (soft) {
    const r = await db.kysely.updateTable("cache").set({ deleted_at: now }).where("id", "=", id).where("deleted_at", "is", null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
  // Objects, staged NARs and pins cascade; NARs no cache uses any more are left to GC.
  const r = await db.kysely.deleteFrom("cache").where("id", "=", id).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export function upstreamKeyNames(row: CacheRow): string[] {
  return JSON.parse(row.upstream_cache_key_names) as string[];
}
