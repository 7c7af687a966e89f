import { createRequire } from "node:module";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { addonHint, openSqlite } from "./sqlite-addon.ts";

describe("better-sqlite3's addon", () => {
  it("an addon that does not load is explained: rebuild it (npm_config_nodedir) or use PostgreSQL", async () => {
    const dir = await mkdtemp(join(tmpdir(), "larder-addon-"));
    try {
      const broken = join(dir, "better_sqlite3.node");
      await writeFile(broken, "not a shared object");
      let failure: unknown;
      try {
        new SQLite(join(dir, "x.db"), { nativeBinding: broken });
      } catch (e) {
        failure = e;
      }
      expect(failure).toBeDefined();
      const hint = addonHint(failure);
      expect(hint?.message).toMatch(/^SQLite is unavailable: better-sqlite3's native addon does not load on \w+-\w+ with Node v\d+/);
      expect(hint?.message).toContain("npm rebuild better-sqlite3");
      expect(hint?.message).toContain("npm_config_nodedir=DIR");
      expect(hint?.message).toContain("postgres://");
      // The same for any addon Node cannot open.
      expect(() => createRequire(import.meta.url)(broken)).toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("other failures pass through as they are", async () => {
    expect(() => openSqlite("/proc/no/such/dir/x.db")).toThrow(/unable to open database file|directory does not exist/);
    expect(addonHint(new Error("SQLITE_BUSY: database is locked"))).toBeUndefined();
  });
});
