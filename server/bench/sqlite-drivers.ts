/**
 * `node bench/sqlite-drivers.ts [--objects N] [--lookups N] [--rounds N]` — the SQLite driver on
 * the narinfo path: better-sqlite3 (a native addon, built or downloaded by npm) against Node's own
 * node:sqlite (no native build). A database made by larder's migrations holds N objects; each
 * driver opens it with larderd's pragmas and answers lookups the way findObject does on SQLite
 * (the object by cache and store-path hash, then its NAR by id; prepared once), 90% hits and 10%
 * misses in a fixed random order. Prints lookups per second, the best of --rounds, per driver,
 * and the same through larder's findObject (Kysely over better-sqlite3) for the share the driver
 * has in the whole lookup.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DatabaseSync } from "node:sqlite";
import BetterSqlite from "better-sqlite3";
import { openDb } from "../src/db/connect.ts";
import { findObject } from "../src/db/objects.ts";

const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";
const nix32 = (n: number): string => Array.from(randomBytes(n), (b) => NIX32[b % 32]).join("");

const PRAGMAS = ["journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 10000", "temp_store = MEMORY"];
const OBJECT_SQL = `select * from "object" where "cache_id" = ? and "store_path_hash" = ?`;
const NAR_SQL = `select * from "nar" where "id" = ?`;

interface Prepared {
  get(...params: (string | number)[]): unknown;
}

interface Driver {
  name: string;
  open(path: string): { object: Prepared; nar: Prepared; close(): void };
}

const drivers: Driver[] = [
  {
    name: "better-sqlite3",
    open(path) {
      const db = new BetterSqlite(path);
      for (const p of PRAGMAS) db.pragma(p);
      return { object: db.prepare(OBJECT_SQL), nar: db.prepare(NAR_SQL), close: () => db.close() };
    },
  },
  {
    name: "node:sqlite",
    open(path) {
      const db = new DatabaseSync(path);
      for (const p of PRAGMAS) db.exec(`pragma ${p}`);
      return { object: db.prepare(OBJECT_SQL), nar: db.prepare(NAR_SQL), close: () => db.close() };
    },
  },
];

async function fill(path: string, objects: number): Promise<string[]> {
  const db = await openDb(`sqlite://${path}`);
  await db.migrate();
  const now = Date.now();
  const cache = await db.kysely
    .insertInto("cache")
    .values({ name: "bench", keypair: "bench:x", key_version: 1, is_public: 0, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: "[]", retention_period: null, created_at: now, deleted_at: null })
    .returning("id")
    .executeTakeFirstOrThrow();
  const hashes: string[] = [];
  for (let start = 0; start < objects; start += 500) {
    const n = Math.min(500, objects - start);
    await db.kysely.transaction().execute(async (trx) => {
      const nars = await trx
        .insertInto("nar")
        .values(Array.from({ length: n }, () => ({ nar_hash: randomBytes(32).toString("hex"), nar_size: 4096, compression: "zstd", file_hash: nix32(52), file_size: 1200, storage_key: `nar/${nix32(52)}.nar.zst`, created_at: now })))
        .returning("id")
        .execute();
      const rows = nars.map((nar) => {
        const hash = nix32(32);
        hashes.push(hash);
        return {
          cache_id: cache.id, nar_id: nar.id, store_path_hash: hash, store_path: `/nix/store/${hash}-bench`,
          refs: JSON.stringify([`${nix32(32)}-glibc`, `${nix32(32)}-dep`]), deriver: `${nix32(32)}-bench.drv`, ca: null, system: "x86_64-linux",
          sigs: "[]", upload_file_hash: null, signature: `bench:${randomBytes(64).toString("base64")}`, signature_key_version: 1,
          created_at: now, last_accessed_at: now, created_by: "bench",
        };
      });
      await trx.insertInto("object").values(rows).execute();
    });
  }
  await db.close();
  return hashes;
}

function lookupsFor(hashes: string[], count: number): string[] {
  return Array.from({ length: count }, (_, i) => (i % 10 === 9 ? nix32(32) : (hashes[Math.floor(Math.random() * hashes.length)] as string)));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { objects: { type: "string", default: "100000" }, lookups: { type: "string", default: "200000" }, rounds: { type: "string", default: "5" } } });
  const work = await mkdtemp(join(tmpdir(), "larder-sqlite-drivers-"));
  try {
    const path = join(work, "server.db");
    const hashes = await fill(path, Number(values.objects));
    const lookups = lookupsFor(hashes, Number(values.lookups));
    const rounds = Number(values.rounds);
    const results: Record<string, number> = {};
    for (let round = 0; round < rounds; round++) {
      // Alternate the order so neither driver always runs on a warmer page cache.
      for (const d of round % 2 === 0 ? drivers : [...drivers].reverse()) {
        const db = d.open(path);
        let found = 0;
        const t0 = performance.now();
        for (const h of lookups) {
          const o = db.object.get(1, h) as { nar_id: number } | undefined;
          if (o !== undefined && db.nar.get(o.nar_id) !== undefined) found++;
        }
        const rate = lookups.length / ((performance.now() - t0) / 1000);
        db.close();
        if (found < lookups.length * 0.85) throw new Error(`${d.name} found only ${found} of ${lookups.length}`);
        results[d.name] = Math.max(results[d.name] ?? 0, rate);
      }
    }
    const db = await openDb(`sqlite://${path}`);
    let best = 0;
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      for (const h of lookups) await findObject(db, 1, h);
      best = Math.max(best, lookups.length / ((performance.now() - t0) / 1000));
    }
    await db.close();
    results["findObject (Kysely + better-sqlite3)"] = best;
    process.stdout.write(`${values.objects} objects, ${lookups.length} lookups (90% hits), best of ${rounds}; Node ${process.version}\n`);
    for (const [name, rate] of Object.entries(results)) process.stdout.write(`${name.padEnd(40)} ${Math.round(rate).toLocaleString("en")} lookups/s (${(1e6 / rate).toFixed(2)} µs each)\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
