/**
 * One cache's layout lock: writers of narinfos hold it shared, removal holds it exclusive while it
 * decides what may go. On PostgreSQL it is a transaction-scoped advisory lock (several processes
 * write one layout); on SQLite, whose database one process owns, an in-process lock, so no
 * database transaction stays open across a bucket request and stalls every other query.
 */
import { sql } from "kysely";
import type { Db } from "../db/connect.ts";

export type LockMode = "shared" | "exclusive";

// "LBKT": its own advisory-lock namespace, apart from the push/GC lock (db/objects.ts lockCache).
const NAMESPACE = 0x4c424b54;

class RwLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: { mode: LockMode; grant: () => void }[] = [];

  async acquire(mode: LockMode): Promise<void> {
    if (this.waiting.length === 0 && this.free(mode)) return this.take(mode);
    await new Promise<void>((grant) => this.waiting.push({ mode, grant }));
  }

  release(mode: LockMode): void {
    if (mode === "shared") this.readers--;
    else this.writer = false;
    // First come, first served: a waiting writer is not overtaken by later readers.
    while (this.waiting.length > 0 && this.free((this.waiting[0] as { mode: LockMode }).mode)) {
      const next = this.waiting.shift() as { mode: LockMode; grant: () => void };
      this.take(next.mode);
      next.grant();
    }
  }

  get idle(): boolean {
    return this.readers === 0 && !this.writer && this.waiting.length === 0;
  }

  private free(mode: LockMode): boolean {
    return !this.writer && (mode === "shared" || this.readers === 0);
  }

  private take(mode: LockMode): void {
    if (mode === "shared") this.readers++;
    else this.writer = true;
  }
}

export function layoutLocks(db: Db) {
  const local = new Map<number, RwLock>();
  return async function locked<T>(cacheId: number, mode: LockMode, fn: (db: Db) => Promise<T>): Promise<T> {
    if (db.dialect === "postgres") {
      return db.kysely.transaction().execute(async (trx) => {
        if (mode === "shared") await sql`select pg_advisory_xact_lock_shared(${NAMESPACE}::int, ${cacheId}::int)`.execute(trx);
        else await sql`select pg_advisory_xact_lock(${NAMESPACE}::int, ${cacheId}::int)`.execute(trx);
        return fn({ ...db, kysely: trx });
      });
    }
    let lock = local.get(cacheId);
    if (!lock) local.set(cacheId, (lock = new RwLock()));
    await lock.acquire(mode);
    try {
      return await fn(db);
    } finally {
      lock.release(mode);
      if (lock.idle) local.delete(cacheId);
    }
  };
}

/** Runs `fn` atomically: inside the caller's transaction if there is one, else in a new one. */
export function atomically<T>(db: Db, fn: (db: Db) => Promise<T>): Promise<T> {
  if (db.kysely.isTransaction) return fn(db);
  return db.kysely.transaction().execute((trx) => fn({ ...db, kysely: trx }));
}
