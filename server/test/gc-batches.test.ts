/**
 * GC in batches over a cache larger than one batch: whatever order the access times put
 * referrers and references in (after a push, reversed, all one instant), a run deletes exactly
 * the expired closures and leaves no reference dangling — on SQLite and on PostgreSQL. The data
 * is written through the database layer (bench/synth.ts): thousands of paths, no Nix needed.
 */
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb, type Db } from "../src/db/connect.ts";
import { collectGarbage } from "../src/gc/run.ts";
import { createLocalStorage } from "../src/storage/local.ts";
import { poolOf } from "../src/storage/pool.ts";
import { createSynthCache, danglingReferences, synthesizeCache } from "../bench/synth.ts";

import { globalPostgres, postgresAvailable, type PostgresHandle } from "./support/postgres.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const DAY = 86_400;

describe.each(["sqlite", "postgres"] as const)("GC in batches on %s", (backend) => {
  if (backend === "postgres" && !postgresAvailable("GC batches on PostgreSQL")) return;
  let dir: TempDir;
  let pg: PostgresHandle | undefined;
  let db: Db;

  beforeAll(async () => {
    dir = await makeTempDir("gc-batches");
    if (backend === "postgres") pg = globalPostgres();
    db = await openDb(pg ? await pg.createDatabase() : `sqlite://${join(dir.path, "larder.db")}`);
    await db.migrate();
  });
  afterAll(async () => {
    await db?.close();
    await pg?.stop();
    await dir?.cleanup();
  });

  it.each(["push", "reversed", "same"] as const)("deletes exactly the expired closures, access times in %s order", async (times) => {
    const now = Date.now();
    const cacheId = await createSynthCache(db, `c-${times}`, true, 7 * DAY);
    const other = await createSynthCache(db, `other-${times}`, true, 7 * DAY);
    // Closures of 40 paths (depth 5), several batches of expired paths in all.
    const synth = await synthesizeCache(db, { cacheId, objects: 3200, closureSize: 40, expiredShare: 0.4, now, times });
    const untouched = await synthesizeCache(db, { cacheId: other, objects: 400, closureSize: 40, expiredShare: 0, now, times });
    expect(synth.expired).toBeGreaterThan(1000);
    const count = async (id: number) => Number((await db.kysely.selectFrom("object").select((eb) => eb.fn.countAll().as("n")).where("cache_id", "=", id).executeTakeFirstOrThrow()).n);
    const stats = await collectGarbage(
      { db, pool: poolOf(await createLocalStorage({ path: join(dir.path, "storage") }), pino({ level: "silent" })), gc: { intervalSeconds: 0, defaultRetentionSeconds: 7 * DAY, graceSeconds: 3600 }, log: pino({ level: "silent" }) },
      now,
    );
    expect(stats.objects).toBe(synth.expired);
    expect(stats.nars).toBe(synth.expired);
    expect(await count(cacheId)).toBe(synth.objects - synth.expired);
    expect(await count(other)).toBe(untouched.objects);
    expect(await danglingReferences(db, cacheId)).toBe(0);
    // The NARs of what is left are all still there.
    const orphans = await db.kysely.selectFrom("object").leftJoin("nar", "nar.id", "object.nar_id").select("object.id").where("nar.id", "is", null).execute();
    expect(orphans).toEqual([]);
    // A second run finds nothing more.
    const again = await collectGarbage(
      { db, pool: poolOf(await createLocalStorage({ path: join(dir.path, "storage") }), pino({ level: "silent" })), gc: { intervalSeconds: 0, defaultRetentionSeconds: 7 * DAY, graceSeconds: 3600 }, log: pino({ level: "silent" }) },
      now,
    );
    expect(again.objects).toBe(0);
    expect(again.nars).toBe(0);
  });
});
