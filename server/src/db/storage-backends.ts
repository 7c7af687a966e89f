/** What the database knows about storage backends: bytes stored on each, which are draining, which are named. */
import { sql, type Kysely } from "kysely";
import type { Database } from "./schema.ts";
import type { Db } from "./connect.ts";

export interface BackendUsage {
  /** Bytes of NARs stored there plus old copies not deleted yet. */
  bytes: number;
  nars: number;
}

export async function backendUsage(db: Db): Promise<Map<string, BackendUsage>> {
  return (await backendUsageSeeing(db, () => [])).backends;
}

export interface UsageRead {
  backends: Map<string, BackendUsage>;
  /** Of the keys asked, those with a `nar` row in the same snapshot as the sums: key → its backend. */
  seen: Map<string, string>;
}

/**
 * Bytes per backend, and which of `keys()` the sums include. One snapshot for both (PostgreSQL:
 * repeatable read; SQLite: one read transaction), and the keys are taken after the sums are read,
 * so a key whose row was committed before the snapshot is among them whenever its writer knew it
 * before committing (pool.ts counts on exactly that).
 */
export async function backendUsageSeeing(db: Db, keys: () => string[]): Promise<UsageRead> {
  const read = async (q: Kysely<Database>): Promise<UsageRead> => {
    const backends = new Map<string, BackendUsage>();
    const entry = (name: string) => {
      let u = backends.get(name);
      if (!u) backends.set(name, (u = { bytes: 0, nars: 0 }));
      return u;
    };
    const nars = await q
      .selectFrom("nar")
      .select(["backend", sql<string>`coalesce(sum(file_size), 0)`.as("bytes"), sql<string>`count(*)`.as("n")])
      .groupBy("backend")
      .execute();
    for (const r of nars) {
      const u = entry(r.backend);
      u.bytes += Number(r.bytes);
      u.nars += Number(r.n);
    }
    const pending = await q
      .selectFrom("storage_journal")
      .select(["backend", sql<string>`coalesce(sum(size), 0)`.as("bytes")])
      .where("size", "is not", null)
      .groupBy("backend")
      .execute();
    for (const r of pending) entry(r.backend).bytes += Number(r.bytes);
    const seen = new Map<string, string>();
    const asked = keys();
    for (let i = 0; i < asked.length; i += 500) {
      const rows = await q.selectFrom("nar").select(["storage_key", "backend"]).where("storage_key", "in", asked.slice(i, i + 500)).execute();
      for (const r of rows) seen.set(r.storage_key, r.backend);
    }
    return { backends, seen };
  };
  const tx = db.kysely.transaction();
  return (db.dialect === "postgres" ? tx.setIsolationLevel("repeatable read") : tx).execute(read);
}

export async function drainingBackends(db: Db): Promise<Set<string>> {
  const rows = await db.kysely.selectFrom("storage_backend").select("name").where("draining", "=", 1).execute();
  return new Set(rows.map((r) => r.name));
}

export async function setDraining(db: Db, name: string, draining: boolean, now = Date.now()): Promise<void> {
  await db.kysely
    .insertInto("storage_backend")
    .values({ name, draining: draining ? 1 : 0, updated_at: now })
    .onConflict((oc) => oc.column("name").doUpdateSet({ draining: draining ? 1 : 0, updated_at: now }))
    .execute();
}

/** Every backend name the database refers to (objects stored there, or bytes still to delete). */
export async function recordedBackends(db: Db): Promise<Set<string>> {
  const names = new Set<string>();
  for (const table of ["nar", "build_log", "storage_journal"] as const) {
    const rows = await db.kysely.selectFrom(table).select("backend").distinct().execute();
    for (const r of rows) names.add(r.backend);
  }
  return names;
}

/** Renames a backend everywhere the database names it, in one transaction; returns the rows changed. */
export async function renameBackend(db: Db, from: string, to: string, now = Date.now()): Promise<number> {
  return db.kysely.transaction().execute(async (trx) => {
    let changed = 0;
    for (const table of ["nar", "build_log", "storage_journal"] as const) {
      const r = await trx.updateTable(table).set({ backend: to }).where("backend", "=", from).executeTakeFirst();
      changed += Number(r.numUpdatedRows);
    }
    const state = await trx.selectFrom("storage_backend").selectAll().where("name", "=", from).executeTakeFirst();
    if (state) {
      await trx.deleteFrom("storage_backend").where("name", "=", from).execute();
      await trx.insertInto("storage_backend").values({ name: to, draining: state.draining, updated_at: now })
        .onConflict((oc) => oc.column("name").doUpdateSet({ draining: state.draining, updated_at: now })).execute();
    }
    return changed;
  });
}
