/**
 * GC on SQLite deletes rows whose index entries sit on random pages (store-path and reference
 * hashes are random). With SQLite's defaults a batch of a thousand deletes dirties more pages than
 * the 2 MiB page cache holds, so pages spill to the WAL mid-transaction and are written again,
 * and the WAL is checkpointed into the database (with an fsync) after almost every batch,
 * rewriting the same index pages batch after batch. For the run, a page cache that holds a batch
 * and checkpoints every few batches instead let each page reach the database file once per
 * checkpoint (docs/PERFORMANCE.md, GC). Batches, and so how long writers wait, do not change.
 */
import { sql } from "kysely";
import type { Db } from "../db/connect.ts";

const GC_CACHE_KIB = 32 * 1024;
const GC_AUTOCHECKPOINT_PAGES = 16_384;

async function pragma(db: Db, name: string): Promise<number> {
  const { rows } = await sql<Record<string, number>>`pragma ${sql.raw(name)}`.execute(db.kysely);
  return Number(Object.values(rows[0] ?? {})[0]);
}

async function setPragma(db: Db, name: string, value: number): Promise<void> {
  await sql`pragma ${sql.raw(name)} = ${sql.raw(String(Math.trunc(value)))}`.execute(db.kysely);
}

/** Runs `fn` with the connection tuned for bulk deletes, restoring its settings after (SQLite only). */
export async function withBulkDeletes<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  if (db.dialect !== "sqlite") return fn();
  const cache = await pragma(db, "cache_size");
  const autocheckpoint = await pragma(db, "wal_autocheckpoint");
  await setPragma(db, "cache_size", -GC_CACHE_KIB);
  await setPragma(db, "wal_autocheckpoint", GC_AUTOCHECKPOINT_PAGES);
  try {
    return await fn();
  } finally {
    try {
      await setPragma(db, "cache_size", cache);
      await setPragma(db, "wal_autocheckpoint", autocheckpoint);
      // What the run left in the WAL goes to the database now, not at some request's commit.
      await sql`pragma wal_checkpoint(PASSIVE)`.execute(db.kysely);
    } catch {
      // A database that fails here failed the run too (that error is the one to report); these
      // are performance settings only.
    }
  }
}
