/**
 * What the storage pool counts as stored on each backend (capacity, least-used and split decide
 * on it): the last usage read plus this process's writes that read did not include — each write
 * exactly once, however a read falls between its upload, its commit and its settling. Real
 * SQLite and PostgreSQL; the NAR rows are written as ingest commits them.
 */
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb, type Db } from "../src/db/connect.ts";
import { openStoragePool, type StoragePool } from "../src/storage/pool.ts";
import type { StorageSetup } from "../src/storage/types.ts";
import { globalPostgres, postgresAvailable, type PostgresHandle } from "./support/postgres.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const pgReady = postgresAvailable("the pool's usage reads run against PostgreSQL too");

let n = 0;
const freshKey = () => `nar/usage-${process.pid}-${++n}.nar.zst`;

function suite(name: string, open: (dir: string) => Promise<{ db: Db; done?: () => Promise<void> }>) {
  describe(`storage pool usage (${name})`, () => {
    let dir: TempDir;
    let db: Db;
    let done: (() => Promise<void>) | undefined;
    let pool: StoragePool;

    beforeAll(async () => {
      dir = await makeTempDir("pool-usage");
      ({ db, done } = await open(dir.path));
      await db.migrate();
      const setup: StorageSetup = {
        backends: ["a", "b"].map((b) => ({ name: b, storage: { type: "local" as const, path: join(dir.path, b) }, weight: 1, presignDownloads: false })),
        placement: { strategy: "in-order", backends: ["a", "b"] },
        caches: new Map(),
        retireAfterSeconds: 3600,
      };
      // Only "a" is written to, and it has a capacity: usage is read. No timer reads during a test.
      setup.backends[0]!.capacity = 1e12;
      pool = await openStoragePool(setup, { db, log: pino({ level: "silent" }), refreshMs: 3_600_000 });
    });
    afterAll(async () => {
      pool?.close();
      await db?.close();
      await done?.();
      await dir?.cleanup();
    });

    const commit = (key: string, size: number, backend = "a") =>
      db.kysely
        .insertInto("nar")
        .values({ nar_hash: key.padEnd(64, "0").slice(0, 64), nar_size: size, compression: "zstd", file_hash: "h", file_size: size, storage_key: key, backend, created_at: Date.now() })
        .execute();
    const usage = () => pool.usage().get("a");

    it("counts an upload once when a usage read falls between its commit and its settling", async () => {
      await pool.refresh();
      const base = usage()!;
      const key = freshKey();
      const w = await pool.write(undefined, 1000, async () => key, undefined, true, (k) => k);
      expect(w.backend.name).toBe("a");
      expect(usage()).toBe(base + 1000);
      await commit(key, 1000);
      await pool.refresh();
      expect(usage()).toBe(base + 1000);
      w.settle(true);
      expect(usage()).toBe(base + 1000);
      await pool.refresh();
      expect(usage()).toBe(base + 1000);
    });

    it("counts an upload once when it commits and settles while a read is under way", async () => {
      await pool.refresh();
      const base = usage()!;
      const key = freshKey();
      const w = await pool.write(undefined, 700, async () => key, undefined, true, (k) => k);
      const reading = pool.refresh();
      await commit(key, 700);
      w.settle(true);
      await reading;
      expect(usage()).toBe(base + 700);
      await pool.refresh();
      expect(usage()).toBe(base + 700);
    });

    it("counts what is being written, forgets a failed write, and drops a row deleted since", async () => {
      await pool.refresh();
      const base = usage()!;
      const failed = await pool.write(undefined, 300, async () => freshKey(), undefined, true, (k) => k);
      expect(usage()).toBe(base + 300);
      failed.settle(false);
      expect(usage()).toBe(base);

      const key = freshKey();
      const w = await pool.write(undefined, 400, async () => key, undefined, true, (k) => k);
      await commit(key, 400);
      w.settle(true);
      await pool.refresh();
      expect(usage()).toBe(base + 400);
      await db.kysely.deleteFrom("nar").where("storage_key", "=", key).execute();
      await pool.refresh();
      expect(usage()).toBe(base);
    });

    it("counts a write that never becomes a NAR row (a build log) until a read that began after it", async () => {
      await pool.refresh();
      const base = usage()!;
      await pool.write(undefined, 250, async () => undefined);
      expect(usage()).toBe(base + 250);
      await new Promise((r) => setTimeout(r, 5));
      await pool.refresh();
      expect(usage()).toBe(base);
    });

    it("counts a row that moved to another backend there, not twice", async () => {
      await pool.refresh();
      const base = usage()!;
      const baseB = pool.usage().get("b")!;
      const key = freshKey();
      const w = await pool.write(undefined, 600, async () => key, undefined, true, (k) => k);
      await commit(key, 600);
      await db.kysely.updateTable("nar").set({ backend: "b" }).where("storage_key", "=", key).execute();
      await pool.refresh();
      w.settle(true);
      expect(usage()).toBe(base);
      expect(pool.usage().get("b")).toBe(baseB + 600);
    });
  });
}

suite("SQLite", async (dir) => ({ db: await openDb(`sqlite://${join(dir, "larder.db")}`) }));

if (pgReady) {
  let pg: PostgresHandle;
  suite("PostgreSQL", async () => {
    pg = globalPostgres();
    return { db: await openDb(await pg.createDatabase()), done: () => pg.stop() };
  });
}
