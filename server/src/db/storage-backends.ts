/** What the database knows about storage backends: bytes stored on each, which are draining, which are named. */
import { sql } from "kysely";
import type { Db } from "./connect.ts";

export interface BackendUsage {
  /** Bytes of NARs stored there plus old copies not deleted yet. */
  bytes: number;
  nars: number;
}

export async function backendUsage(db: Db): Promise<Map<string, BackendUsage>> {
  const usage = new Map<string, BackendUsage>();
  const entry = (name: string) => {
    let u = usage.get(name);
    if (!u) usage.set(name, (u = { bytes: 0, nars: 0 }));
    return u;
  };
  const nars = await db.kysely
    .selectFrom("nar")
    .select(["backend", sql<string>`coalesce(sum(file_size), 0)`.as("bytes"), sql<string>`count(*)`.as("n")])
    .groupBy("backend")
    .execute();
  for (const r of nars) {
    const u = entry(r.backend);
    u.bytes += Number(r.bytes);
    u.nars += Number(r.n);
  }
  const pending = await db.kysely
    .selectFrom("storage_journal")
    .select(["backend", sql<string>`coalesce(sum(size), 0)`.as("bytes")])
    .where("size", "is not", null)
    .groupBy("backend")
    .execute();
  for (const r of pending) entry(r.backend).bytes += Number(r.bytes);
  return usage;
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
