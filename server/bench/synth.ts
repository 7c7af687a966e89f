/**
 * A large cache written straight through larder's own database layer (migrations, schema,
 * Kysely), for the measurements no real push could set up in time: GC over hundreds of
 * thousands of objects, narinfo lookups over a cache where nothing repeats.
 *
 * Shape: closures of `closureSize` paths, each a binary tree (path i refers to 2i+1 and 2i+2,
 * and to itself), inserted leaves first as Nix pushes them; every root also refers to the first
 * closure (a shared base, like a libc every closure names), which stays fresh. `expiredShare` of
 * the other closures are old; a fresh closure's leaves are old too but stay, because its fresh
 * root refers to them. Each path has its own NAR row (no bytes in storage), and carries the
 * cache's signature, made as a push makes it (`unsigned` leaves it to the first read, as for rows
 * written before pushes signed).
 */
import { createHash } from "node:crypto";
import { sql } from "kysely";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import type { Db } from "../src/db/connect.ts";
import { createCache, getCache } from "../src/db/caches.ts";
import { formatSecretKey, generateSecretKey } from "../src/nix/signing.ts";
import { sha256FromDigest } from "../src/nix/hash.ts";
import { signatureFor } from "../src/narinfo-view.ts";

const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";
const DAY = 86_400_000;

/** A valid store-path hash (32 nix-base32 characters) unique to `n`, spread over the alphabet. */
export function synthHash(n: number): string {
  let x = BigInt(n) * 0x9e3779b97f4a7c15n + 0x1234567n;
  let out = "";
  for (let i = 0; i < 32; i++) {
    if (i === 12) x = BigInt(n) + (1n << 60n);
    out += ALPHABET[Number(x & 31n)];
    x >>= 5n;
  }
  return out;
}

export interface SynthOptions {
  cacheId: number;
  objects: number;
  closureSize: number;
  /** Share of closures (after the first) whose every path is past retention. */
  expiredShare: number;
  now: number;
  /** How old expired paths are; retention in the GC under test must be shorter. */
  ageMs?: number;
  /**
   * Access times of the old paths: "push" grows with insertion order (a referrer was used after
   * what it refers to, as after a push), "reversed" the opposite, "same" one instant for all.
   */
  times?: "push" | "reversed" | "same";
  /** Leave the signatures to the first read. */
  unsigned?: boolean;
  log?: (line: string) => void;
}

export interface SynthResult {
  objects: number;
  /** Paths GC must delete: the paths of expired closures. */
  expired: number;
  hashes: string[];
  /** How long writing the rows took. */
  seconds: number;
}

const ROWS_PER_INSERT = 400;

export async function synthesizeCache(db: Db, o: SynthOptions): Promise<SynthResult> {
  const started = performance.now();
  const old = o.now - (o.ageMs ?? 30 * DAY);
  const hashes: string[] = [];
  let expired = 0;
  const closures = Math.ceil(o.objects / o.closureSize);
  const { max } = await db.kysely.selectFrom("object").select((eb) => eb.fn.max("id").as("max")).executeTakeFirstOrThrow();
  let nextId = Number(max ?? 0) + 1;
  const { maxNar } = await db.kysely.selectFrom("nar").select((eb) => eb.fn.max("id").as("maxNar")).executeTakeFirstOrThrow();
  let nextNar = Number(maxNar ?? 0) + 1;
  const baseRoot = synthHash(0 + o.cacheId * 1e9);
  const cache = await db.kysely.selectFrom("cache").selectAll().where("id", "=", o.cacheId).executeTakeFirstOrThrow();
  let pending: { nars: any[]; objects: any[]; refs: any[] } = { nars: [], objects: [], refs: [] };
  const flush = async () => {
    const p = pending;
    pending = { nars: [], objects: [], refs: [] };
    await db.kysely.transaction().execute(async (trx) => {
      for (let i = 0; i < p.nars.length; i += ROWS_PER_INSERT) await trx.insertInto("nar").values(p.nars.slice(i, i + ROWS_PER_INSERT)).execute();
      for (let i = 0; i < p.objects.length; i += ROWS_PER_INSERT) await trx.insertInto("object").values(p.objects.slice(i, i + ROWS_PER_INSERT)).execute();
      for (let i = 0; i < p.refs.length; i += ROWS_PER_INSERT * 3) await trx.insertInto("object_ref").values(p.refs.slice(i, i + ROWS_PER_INSERT * 3)).execute();
    });
  };
  let n = 0;
  for (let c = 0; c < closures && n < o.objects; c++) {
    const size = Math.min(o.closureSize, o.objects - n);
    const isExpired = c > 0 && ((c * 0.6180339887) % 1) < o.expiredShare;
    const first = n;
    const hashOf = (i: number) => synthHash(first + i + o.cacheId * 1e9);
    // Leaves first, as Nix pushes a closure; ids grow towards the root.
    for (let i = size - 1; i >= 0; i--) {
      const h = hashOf(i);
      const refs = [h];
      for (const child of [2 * i + 1, 2 * i + 2]) if (child < size) refs.push(hashOf(child));
      if (i === 0 && c > 0) refs.push(baseRoot);
      const leaf = 2 * i + 1 >= size;
      const shift = o.times === "reversed" ? -n : o.times === "same" ? 0 : n;
      const at = isExpired || (leaf && c > 0) ? old + shift : o.now - 1000;
      const narId = nextNar++;
      const id = nextId++;
      const narHash = createHash("sha256").update(h).digest();
      const storePath = `/nix/store/${h}-synth-${first + i}`;
      const refNames = refs.map((r) => `${r}-synth`);
      const signature = o.unsigned ? null : signatureFor(cache, storePath, sha256FromDigest(narHash), 1000, refNames);
      pending.nars.push({
        id: narId,
        nar_hash: narHash.toString("hex"),
        nar_size: 1000,
        compression: "zstd",
        file_hash: encodeNixBase32(createHash("sha256").update(`file ${h}`).digest()),
        file_size: 500,
        storage_key: `nar/synth/${h}.nar.zst`,
        created_at: at,
      });
      pending.objects.push({
        id,
        cache_id: o.cacheId,
        nar_id: narId,
        store_path_hash: h,
        store_path: storePath,
        refs: JSON.stringify(refNames),
        deriver: null,
        ca: null,
        system: "x86_64-linux",
        sigs: "[]",
        upload_file_hash: null,
        signature: signature?.value ?? null,
        signature_key_version: signature?.keyVersion ?? null,
        created_at: at,
        last_accessed_at: at,
        created_by: "synth",
      });
      for (const r of refs) pending.refs.push({ object_id: id, cache_id: o.cacheId, ref_hash: r });
      hashes.push(h);
      if (isExpired) expired++;
      n++;
    }
    if (pending.objects.length >= 20_000) {
      await flush();
      o.log?.(`synthesized ${n} of ${o.objects} objects`);
    }
  }
  await flush();
  // Identity sequences on PostgreSQL do not follow explicit ids; autovacuum would analyze the
  // new rows a little later.
  if (db.dialect === "postgres") {
    await sql`select setval(pg_get_serial_sequence('object', 'id'), (select max(id) from object))`.execute(db.kysely);
    await sql`select setval(pg_get_serial_sequence('nar', 'id'), (select max(id) from nar))`.execute(db.kysely);
    await sql`analyze`.execute(db.kysely);
  }
  return { objects: n, expired, hashes, seconds: (performance.now() - started) / 1000 };
}

/** Paths whose reference names no path left in the cache (self-references aside): GC broke a closure. */
export async function danglingReferences(db: Db, cacheId: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*) as n from object_ref r
    where r.cache_id = ${cacheId}
      and not exists (select 1 from object o where o.cache_id = r.cache_id and o.store_path_hash = r.ref_hash)`.execute(db.kysely);
  return Number(rows[0]?.n ?? 0);
}

/** A cache for synthesized paths, with a real signing key; answers its id. */
export async function createSynthCache(db: Db, name: string, isPublic: boolean, retentionSeconds: number | null): Promise<number> {
  await createCache(db, { name, keypair: formatSecretKey(generateSecretKey(`${name}-1`)), isPublic, storeDir: "/nix/store", priority: 40, upstreamCacheKeyNames: [], retentionPeriod: retentionSeconds });
  const row = await getCache(db, name);
  if (!row) throw new Error(`cache ${name} vanished`);
  return row.id;
}

/** 10,000 hashes for get-missing-paths, half of them `present`, different ones for each `round`. */
export function missingPathsQuestion(present: readonly string[], round: number): string[] {
  const asked: string[] = [];
  for (let i = 0; i < 5000; i++) asked.push(present[(i * 7919 + round * 104_729) % present.length] as string);
  for (let i = 0; i < 5000; i++) asked.push(synthHash(2_000_000_000 + round * 10_000 + i));
  return asked;
}
