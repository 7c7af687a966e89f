/** GC's SQLite settings for bulk deletes apply to the run only, whether it succeeds or fails. */
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb, type Db } from "../src/db/connect.ts";
import { withBulkDeletes } from "../src/gc/sqlite-bulk.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

describe("GC's bulk-delete settings on SQLite", () => {
  let dir: TempDir;
  let db: Db;
  const settings = async () => {
    const read = async (name: string) => Number(Object.values((await sql<Record<string, number>>`pragma ${sql.raw(name)}`.execute(db.kysely)).rows[0] ?? {})[0]);
    return { cache: await read("cache_size"), checkpoint: await read("wal_autocheckpoint") };
  };

  beforeAll(async () => {
    dir = await makeTempDir("gc-bulk");
    db = await openDb(`sqlite://${join(dir.path, "larder.db")}`);
    await db.migrate();
  });
  afterAll(async () => {
    await db?.close();
    await dir?.cleanup();
  });

  it("raises the page cache and the checkpoint interval during the run and restores them after", async () => {
    const before = await settings();
    const during = await withBulkDeletes(db, settings);
    expect(during.cache).toBe(-32 * 1024);
    expect(during.checkpoint).toBeGreaterThan(before.checkpoint);
    expect(await settings()).toEqual(before);
    await expect(withBulkDeletes(db, async () => Promise.reject(new Error("the run failed")))).rejects.toThrow("the run failed");
    expect(await settings()).toEqual(before);
  });
});
