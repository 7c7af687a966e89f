/** Per-cache store paths: the narinfo read path, upserts from both push protocols, queries. */
import { CompiledQuery, sql, type Kysely, type Selectable } from "kysely";
import { NOT_NOW, type Db } from "./connect.ts";
import type { Database, ObjectTable } from "./schema.ts";
import type { NarRow } from "./nars.ts";

export type ObjectRow = Selectable<ObjectTable>;

export interface ObjectWithNar {
  object: ObjectRow;
  nar: NarRow;
}

function findObjectQuery(db: Db, cacheId: number, storePathHash: string) {
  return db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .selectAll("object")
    .select([
      "nar.nar_hash",
      "nar.nar_size",
      "nar.compression",
      "nar.file_hash",
      "nar.file_size",
      "nar.storage_key",
      "nar.backend",
      "nar.created_at as nar_created_at",
    ])
    .where("object.cache_id", "=", cacheId)
    .where("object.store_path_hash", "=", storePathHash);
}

type FoundRow = NonNullable<Awaited<ReturnType<ReturnType<typeof findObjectQuery>["executeTakeFirst"]>>>;

// Building and compiling a query with Kysely cost about as much as running it (bench,
// docs/PERFORMANCE.md): the narinfo path compiles its queries once per database and binds
// the parameters per call.
const compiledSql = new WeakMap<Db, Map<string, string>>();

function compiledOnce(db: Db, name: string, parameters: number, build: () => { compile(): CompiledQuery }): string {
  let byName = compiledSql.get(db);
  if (!byName) compiledSql.set(db, (byName = new Map()));
  let text = byName.get(name);
  if (text === undefined) {
    const compiled = build().compile();
    if (compiled.parameters.length !== parameters) throw new Error(`${name}: expected ${parameters} query parameters, got ${compiled.parameters.length}`);
    text = compiled.sql;
    byName.set(name, text);
  }
  return text;
}

async function run<R>(db: Db, text: string, parameters: unknown[]): Promise<R | undefined> {
  return (await db.kysely.executeQuery<R>(CompiledQuery.raw(text, parameters))).rows[0];
}

// SQLite ran the join four times slower than the two primary-key lookups it consists of
// (bench); in process, a second lookup costs no round trip.
const objectOnlySql = (db: Db) => compiledOnce(db, "findObject.object", 2, () => db.kysely.selectFrom("object").selectAll().where("cache_id", "=", 0).where("store_path_hash", "=", ""));
const narOnlySql = (db: Db) => compiledOnce(db, "findObject.nar", 1, () => db.kysely.selectFrom("nar").selectAll().where("id", "=", 0));

/**
 * `findObject` answered in the calling thread, where the database can (SQLite outside a
 * transaction: both reads see one committed state); NOT_NOW otherwise.
 */
export function findObjectNow(db: Db, cacheId: number, storePathHash: string): ObjectWithNar | undefined | typeof NOT_NOW {
  if (db.readNow === undefined) return NOT_NOW;
  const object = db.readNow<ObjectRow>(objectOnlySql(db), [cacheId, storePathHash]);
  if (object === NOT_NOW || object === undefined) return object;
  const nar = db.readNow<NarRow>(narOnlySql(db), [object.nar_id]);
  if (nar === NOT_NOW) return NOT_NOW;
  return nar ? { object, nar } : undefined;
}

/** The hot path: one indexed lookup for a narinfo. */
export async function findObject(db: Db, cacheId: number, storePathHash: string): Promise<ObjectWithNar | undefined> {
  if (db.dialect === "sqlite") {
    const object = await run<ObjectRow>(db, objectOnlySql(db), [cacheId, storePathHash]);
    if (!object) return undefined;
    const nar = await run<NarRow>(db, narOnlySql(db), [object.nar_id]);
    return nar ? { object, nar } : undefined;
  }
  const row = await run<FoundRow>(db, compiledOnce(db, "findObject", 2, () => findObjectQuery(db, 0, "")), [cacheId, storePathHash]);
  if (!row) return undefined;
  const { nar_hash, nar_size, compression, file_hash, file_size, storage_key, backend, nar_created_at, ...object } = row;
  return {
    object,
    nar: { id: object.nar_id, nar_hash, nar_size, compression, file_hash, file_size, storage_key, backend, created_at: nar_created_at },
  };
}

export interface NewObject {
  cacheId: number;
  narId: number;
  storePathHash: string;
  storePath: string;
  references: string[];
  deriver: string | null;
  ca: string | null;
  system: string | null;
  sigs: string[];
  uploadFileHash: string | null;
  createdBy: string | null;
  /**
   * The cache's signature, made at push time so that no read has to make it (an Ed25519
   * signature cost more than the rest of a first read; docs/PERFORMANCE.md). Absent: the first
   * read signs and stores it, as for rows written before.
   */
  signature?: ObjectSignature | null;
}

export interface ObjectSignature {
  value: string;
  keyVersion: number;
}

/**
 * A re-push replaces the path's metadata (attic's semantics) and counts as fresh for retention.
 * The references are kept as rows too, for GC; both change in one transaction.
 */
export async function upsertObject(db: Db, o: NewObject, now = Date.now()): Promise<void> {
  const values = {
    cache_id: o.cacheId,
    nar_id: o.narId,
    store_path_hash: o.storePathHash,
    store_path: o.storePath,
    refs: JSON.stringify(o.references),
    deriver: o.deriver,
    ca: o.ca,
    system: o.system,
    sigs: JSON.stringify(o.sigs),
    upload_file_hash: o.uploadFileHash,
    signature: o.signature?.value ?? null,
    signature_key_version: o.signature?.keyVersion ?? null,
    created_at: now,
    last_accessed_at: now,
    created_by: o.createdBy,
  };
  const { cache_id: _c, store_path_hash: _h, ...update } = values;
  await inTransaction(db, async (trx) => {
    const row = await trx
      .insertInto("object")
      .values(values)
      .onConflict((oc) => oc.columns(["cache_id", "store_path_hash"]).doUpdateSet(update))
      .returning("id")
      .executeTakeFirstOrThrow();
    await trx.deleteFrom("object_ref").where("object_id", "=", row.id).execute();
    const hashes = [...new Set(o.references.map((r) => r.slice(0, 32)))];
    for (let i = 0; i < hashes.length; i += 500) {
      await trx
        .insertInto("object_ref")
        .values(hashes.slice(i, i + 500).map((ref_hash) => ({ object_id: row.id, cache_id: o.cacheId, ref_hash })))
        .execute();
    }
  });
}

/** Runs `fn` in the caller's transaction, or in a new one. */
export async function inTransaction<T>(db: Db, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (db.kysely.isTransaction) return fn(db.kysely);
  return db.kysely.transaction().execute(fn);
}

/**
 * Serialises writers of one cache against its garbage collector on PostgreSQL (uploads share the
 * lock, a GC pass takes it alone), so a path is never committed while a reference it names is being
 * collected. SQLite has one writer at a time already.
 */
export async function lockCache(trx: Kysely<Database>, db: Db, cacheId: number, mode: "shared" | "exclusive"): Promise<void> {
  if (db.dialect !== "postgres") return;
  // The (int, int) form with "LARD" as the first key keeps clear of other advisory-lock users.
  if (mode === "shared") await sql`select pg_advisory_xact_lock_shared(${0x4c415244}::int, ${cacheId}::int)`.execute(trx);
  else await sql`select pg_advisory_xact_lock(${0x4c415244}::int, ${cacheId}::int)`.execute(trx);
}

/** References (base names) that name no path of this cache; self-references count as present. */
export async function missingReferences(trx: Kysely<Database>, cacheId: number, selfHash: string, references: readonly string[]): Promise<string[]> {
  const wanted = references.filter((r) => r.slice(0, 32) !== selfHash);
  if (wanted.length === 0) return [];
  const present = new Set<string>();
  for (let i = 0; i < wanted.length; i += 500) {
    const rows = await trx
      .selectFrom("object")
      .select("store_path_hash")
      .where("cache_id", "=", cacheId)
      .where("store_path_hash", "in", wanted.slice(i, i + 500).map((r) => r.slice(0, 32)))
      .execute();
    for (const r of rows) present.add(r.store_path_hash);
  }
  return wanted.filter((r) => !present.has(r.slice(0, 32)));
}

/** Stores a signature made for one object, so it is signed once per key version. */
export async function saveSignature(db: Db, objectId: number, signature: string, keyVersion: number): Promise<void> {
  await db.kysely.updateTable("object").set({ signature, signature_key_version: keyVersion }).where("id", "=", objectId).execute();
}

/** Stores signatures made on first reads (by object id), in one transaction. */
export async function saveSignatures(db: Db, signed: ReadonlyMap<number, { signature: string; keyVersion: number }>): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    for (const [id, s] of signed) await trx.updateTable("object").set({ signature: s.signature, signature_key_version: s.keyVersion }).where("id", "=", id).execute();
  });
}

/**
 * Which of `hashes` this cache has. One statement with one parameter whatever the count, so
 * 10,000 hashes never hit SQLite's or PostgreSQL's parameter limits.
 */
export async function existingHashes(db: Db, cacheId: number, hashes: readonly string[]): Promise<Set<string>> {
  return new Set((await presentObjects(db, cacheId, hashes)).keys());
}

/**
 * The objects of `hashes` this cache has, by hash → id, in one statement with one parameter
 * whatever the count. On SQLite the id is the key of the (cache_id, store_path_hash) index's
 * rows, so this reads the index alone.
 */
export async function presentObjects(db: Db, cacheId: number, hashes: readonly string[]): Promise<Map<string, number>> {
  if (hashes.length === 0) return new Map();
  const list =
    db.dialect === "sqlite"
      ? sql`(select value from json_each(${JSON.stringify(hashes)}))`
      : sql`(select unnest(${hashes as string[]}::text[]))`;
  const { rows } = await sql<{ store_path_hash: string; id: number }>`
    select store_path_hash, id from object where cache_id = ${cacheId} and store_path_hash in ${list}`.execute(db.kysely);
  return new Map(rows.map((r) => [r.store_path_hash, Number(r.id)]));
}

export async function deleteObject(db: Db, objectId: number): Promise<void> {
  await db.kysely.deleteFrom("object").where("id", "=", objectId).execute();
}

/** Store-path hashes in this cache whose references include `baseName` (for refusing deletes). */
export async function referrers(db: Db, cacheId: number, baseName: string, limit = 10): Promise<string[]> {
  const rows = await db.kysely
    .selectFrom("object")
    .select(["store_path", "refs"])
    .where("cache_id", "=", cacheId)
    .where("refs", "like", `%${JSON.stringify(baseName).slice(1, -1)}%`)
    .execute();
  return rows
    .filter((r) => (JSON.parse(r.refs) as string[]).includes(baseName) && !r.store_path.endsWith(`/${baseName}`))
    .slice(0, limit)
    .map((r) => r.store_path);
}
