/**
 * Taking entries out of a cache's bucket layout, top-down, so the layout stays closed at every
 * instant: nix-cache-info first when the whole layout goes (new clients stop using it), then
 * realisations and logs (nothing names them), then narinfos that no remaining entry needs, each
 * before its listing and NAR; a NAR only once no remaining entry names it. Entries are marked
 * "removing" under the cache's exclusive layout lock, which writers of narinfos hold shared
 * (bucket/publish.ts), and their rows go only after their keys: a crash anywhere leaves rows
 * that the next pass finishes.
 */
import { sql, type RawBuilder } from "kysely";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { Db } from "../db/connect.ts";
import { listingKey, logKey, narinfoKey, realisationKey, INFO_KEY } from "./keys.ts";
import { currentCache, type EntryRow } from "./publish.ts";
import type { LayoutRuntime } from "./runtime.ts";

const BATCH = 500;
const ORDER: EntryRow["kind"][] = ["info", "realisation", "log", "path"];

/** Whether the thing an entry publishes still exists in the cache (for info: always). */
function live(kind: EntryRow["kind"]): RawBuilder<boolean> {
  switch (kind) {
    case "info":
      return sql<boolean>`1 = 1`;
    case "path":
      return sql<boolean>`exists (select 1 from object o where o.cache_id = bucket_entry.cache_id and o.store_path_hash = bucket_entry.name)`;
    case "log":
      return sql<boolean>`exists (select 1 from build_log b where b.cache_id = bucket_entry.cache_id and b.drv_name = bucket_entry.name)`;
    case "realisation":
      return sql<boolean>`exists (select 1 from realisation r join object o on o.cache_id = r.cache_id and o.store_path_hash = r.out_path_hash
        where r.cache_id = bucket_entry.cache_id and r.drv_output = bucket_entry.name)`;
  }
}

const keysOf = (e: Pick<EntryRow, "kind" | "name" | "prefix">): string[] => {
  switch (e.kind) {
    case "info":
      return [e.prefix + INFO_KEY];
    case "path":
      return [e.prefix + narinfoKey(e.name), e.prefix + listingKey(e.name)];
    case "log":
      return [e.prefix + logKey(e.name)];
    case "realisation":
      return [e.prefix + realisationKey(e.name)];
  }
};

/** Marks a batch of removable entries "removing"; `prefix` undefined means the whole layout goes. */
async function claimBatch(rt: LayoutRuntime, cacheId: number, kind: EntryRow["kind"], prefix: string | undefined): Promise<EntryRow[]> {
  return rt.locked(cacheId, "exclusive", async (db) => {
    let q = db.kysely.selectFrom("bucket_entry").selectAll().where("cache_id", "=", cacheId).where("kind", "=", kind);
    if (prefix !== undefined) {
      const p = prefix;
      // A "writing" entry whose thing is gone is taken too: its writer finds it removing and stops before its narinfo.
      q = q.where((eb) => eb.or([eb("state", "=", "removing"), eb("prefix", "<>", p), eb.not(live(kind))]));
    }
    // Never a narinfo that a remaining entry needs (a referrer, a realisation of it).
    if (kind === "path") {
      q = q.where(sql<boolean>`not exists (select 1 from bucket_ref r where r.cache_id = bucket_entry.cache_id and r.ref_hash = bucket_entry.name and r.entry_id <> bucket_entry.id)`);
    }
    const rows = await q.orderBy("id").limit(BATCH).execute();
    const fresh = rows.filter((r) => r.state !== "removing").map((r) => r.id);
    if (fresh.length > 0) await db.kysely.updateTable("bucket_entry").set({ state: "removing", updated_at: Date.now() }).where("id", "in", fresh).execute();
    return rows;
  });
}

/** Deletes the NARs of removed path entries that no other entry at their prefix names, then the rows; under the exclusive lock, so no writer starts naming one meanwhile. */
async function dropRows(rt: LayoutRuntime, cacheId: number, rows: EntryRow[]): Promise<void> {
  await rt.locked(cacheId, "exclusive", async (db: Db) => {
    const ids = rows.map((r) => r.id);
    const narKeys = [...new Set(rows.filter((r) => r.nar_key !== null).map((r) => `${r.prefix}\0${r.nar_key}`))];
    const unused: string[] = [];
    for (const pk of narKeys) {
      const [prefix, narKey] = pk.split("\0") as [string, string];
      const other = await db.kysely
        .selectFrom("bucket_entry")
        .select("id")
        .where("prefix", "=", prefix)
        .where("nar_key", "=", narKey)
        .where("id", "not in", ids)
        .executeTakeFirst();
      if (!other) unused.push(prefix + narKey);
    }
    for (const k of unused) await rt.checkpoint("delete-nar", k);
    await rt.target.deleteMany(unused);
    await db.kysely.deleteFrom("bucket_entry").where("id", "in", ids).execute();
  });
}

/**
 * Removes what should no longer be in cache `cacheId`'s layout; answers how many entries went.
 * Paths are taken level by level: each pass can only take narinfos nothing remaining needs.
 */
export async function removeStale(rt: LayoutRuntime, cacheId: number): Promise<number> {
  const prefix = rt.prefixOf(await currentCache(rt.db, cacheId));
  let removed = 0;
  for (const kind of ORDER) {
    for (;;) {
      const rows = await claimBatch(rt, cacheId, kind, prefix);
      if (rows.length === 0) break;
      const keys = rows.flatMap(keysOf);
      // The narinfos (and other trusted keys) first, in one batch; listings ride along.
      for (const k of keys) await rt.checkpoint(`delete-${kind}`, k);
      await rt.target.deleteMany(keys);
      await dropRows(rt, cacheId, rows);
      removed += rows.length;
      await yieldToEventLoop();
    }
  }
  return removed;
}

/** Caches that have layout entries (including destroyed ones, whose entries must still go). */
export async function cachesWithEntries(db: Db): Promise<number[]> {
  const rows = await db.kysely.selectFrom("bucket_entry").select("cache_id").distinct().execute();
  return rows.map((r) => r.cache_id);
}
