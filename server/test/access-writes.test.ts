/**
 * Access-time writes (src/db/access.ts), as the access tracker flushes them: exactly the rows
 * given that were not written within ACCESS_GRANULARITY_MS get the new time, whatever order the
 * hits came in, and a large flush lets the event loop run between its statements (on SQLite every
 * statement runs on the thread requests use).
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb, type Db } from "../src/db/connect.ts";
import { ACCESS_GRANULARITY_MS, touchObjectIds } from "../src/db/access.ts";
import { createSynthCache, synthesizeCache } from "../bench/synth.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

describe("access-time writes on SQLite", () => {
  let dir: TempDir;
  let db: Db;
  let ids: number[];
  const now = Date.now();

  beforeAll(async () => {
    dir = await makeTempDir("access-writes");
    db = await openDb(`sqlite://${join(dir.path, "larder.db")}`);
    await db.migrate();
    const cacheId = await createSynthCache(db, "c", true, null);
    await synthesizeCache(db, { cacheId, objects: 20_000, closureSize: 100, expiredShare: 0.3, now, unsigned: true });
    ids = (await db.kysely.selectFrom("object").select("id").execute()).map((r) => r.id);
  });
  afterAll(async () => {
    await db?.close();
    await dir?.cleanup();
  });

  const times = async () => new Map((await db.kysely.selectFrom("object").select(["id", "last_accessed_at"]).execute()).map((r) => [r.id, r.last_accessed_at]));

  it("writes exactly the stale rows among those given, in any order, and yields between statements", async () => {
    const before = await times();
    const given = ids.filter((_, i) => i % 3 !== 0).sort(() => Math.random() - 0.5);
    const at = now + 1000;
    let turns = 0;
    let counting = true;
    const count = () => {
      if (!counting) return;
      turns++;
      setImmediate(count);
    };
    setImmediate(count);
    await touchObjectIds(db, given, at);
    counting = false;
    const after = await times();
    const asked = new Set(given);
    for (const [id, t] of before) {
      const expected = asked.has(id) && t < at - ACCESS_GRANULARITY_MS ? at : t;
      expect(after.get(id), `object ${id}`).toBe(expected);
    }
    expect([...after.values()].filter((t) => t === at).length).toBeGreaterThan(5000);
    // 13,334 ids are 27 statements: the loop turned between them, not once after all of them.
    expect(turns).toBeGreaterThan(10);
  });
});
