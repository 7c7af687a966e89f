/**
 * The narinfo lookup's synchronous SQLite read (Db.readNow, findObjectNow): it answers exactly
 * what the query layer answers, and never what a transaction has written but not committed —
 * while one holds the connection, lookups wait for it through the query layer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
import { NOT_NOW } from "../src/db/connect.ts";
import { findObject, findObjectNow, upsertObject } from "../src/db/objects.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex } from "../src/nix/hash.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";

const HIT = "8prr02r3rvr10vchn6d5n2x7ksy1ld5x";
// Another valid store-path hash, never pushed: the transaction below writes it.
const OTHER = "a3phgncn84kxx9h74fjk60x2bq3v8bs0";

describe.each(BACKENDS)("narinfo lookups and open transactions on %s", (backend) => {
  if (backend === "postgres-s3" && !postgresAvailable("read-now on PostgreSQL")) return;
  let l: Larder;
  let cacheId: number;
  let narId: number;
  let storePath: string;

  beforeAll(async () => {
    l = await startLarder(backend);
    await createTestCache(l, "rn", { isPublic: true });
    const dir = join(FIXTURES, "caches", "none");
    const info = parseNarInfo(await readFile(join(dir, `${HIT}.narinfo`), "utf8"));
    storePath = info.storePath;
    const meta = { cache: "rn", store_path_hash: HIT, store_path: info.storePath, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: formatHex(info.narHash), nar_size: info.narSize };
    const res = await fetch(`${l.url}/_api/v1/upload-path`, { method: "PUT", headers: { authorization: `Bearer ${l.rootToken}`, "x-attic-nar-info": JSON.stringify(meta) }, body: await readFile(join(dir, info.url)) });
    expect(res.status, await res.text()).toBe(200);
    const row = await l.server.ctx.db.kysely.selectFrom("object").innerJoin("cache", "cache.id", "object.cache_id").select(["object.cache_id", "object.nar_id"]).where("cache.name", "=", "rn").executeTakeFirstOrThrow();
    cacheId = row.cache_id;
    narId = row.nar_id;
  });
  afterAll(async () => {
    await l?.stop();
  });

  it("answers what the query layer answers, for a hit and a miss", async () => {
    const db = l.server.ctx.db;
    for (const hash of [HIT, OTHER]) {
      const now = findObjectNow(db, cacheId, hash);
      if (backend === "sqlite-local") expect(now).toEqual(await findObject(db, cacheId, hash));
      else expect(now).toBe(NOT_NOW);
    }
  });

  it("never serves a path a transaction wrote but did not commit; the read waits, then answers what is committed", async () => {
    const db = l.server.ctx.db;
    const get = () => fetch(`${l.url}/rn/${OTHER}.narinfo`).then((r) => r.status);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let written!: () => void;
    const inside = new Promise<void>((r) => (written = r));
    const trx = db.kysely.transaction().execute(async (kysely) => {
      const tx = { ...db, kysely };
      await upsertObject(tx, { cacheId, narId, storePathHash: OTHER, storePath: storePath.replace(HIT, OTHER), references: [], deriver: null, ca: null, system: null, sigs: [], uploadFileHash: null, createdBy: null });
      written();
      await held;
      throw new Error("rolled back on purpose");
    });
    await inside;
    if (backend === "sqlite-local") expect(findObjectNow(db, cacheId, OTHER)).toBe(NOT_NOW);
    l.server.ctx.narInfos.clear();
    const status = get();
    const early = await Promise.race([status, new Promise((r) => setTimeout(() => r("pending"), 300))]);
    // SQLite: the read waits for the connection; PostgreSQL: it reads the last committed state.
    expect(early).toBe(backend === "sqlite-local" ? "pending" : 404);
    release();
    await expect(trx).rejects.toThrow("rolled back on purpose");
    expect(await status).toBe(404);
    expect(findObjectNow(db, cacheId, OTHER)).toBe(backend === "sqlite-local" ? undefined : NOT_NOW);
  });
});
