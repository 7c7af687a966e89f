/**
 * Retention against hits another process has not written yet: an api-server keeps narinfo and
 * NAR hits in memory for up to one flush interval, and a garbage-collector-once run in another
 * process must still count a path served just before it started.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLarderd, startDaemon, type Daemon } from "./support/daemon.ts";
import { createCache, pushPath } from "./support/load.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

describe("GC in another process and unwritten hits", () => {
  let dir: TempDir;
  let config: string;
  let daemon: Daemon;
  let token: string;

  beforeAll(async () => {
    dir = await makeTempDir("gc-access");
    config = join(dir.path, "server.toml");
    await writeFile(
      config,
      [
        `[database]\nurl = "sqlite://${dir.path}/server.db"`,
        `[storage]\ntype = "local"\npath = "${dir.path}/storage"`,
        // The default access-flush-interval (10 s): hits wait that long in the api-server's memory.
        `[garbage-collection]\ndefault-retention-period = "1 day"`,
        `[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"`,
      ].join("\n"),
    );
    daemon = await startDaemon(config, "api-server");
    const minted = await runLarderd(["make-token", "--config", config, "--sub", "t", "--validity", "1h", "--pull", "*", "--push", "*", "--create-cache", "*"]);
    token = minted.stdout.trim().split("\n").at(-1) as string;
    await createCache(daemon.url, token, "main");
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await dir?.cleanup();
  });

  it("keeps a path served seconds before the run, and collects the one nobody used", async () => {
    const [used, unused, probe] = [0, 1, 2].map(() => pushPath(daemon.url, token, "main"));
    for (const p of [used, unused, probe]) expect((await p!.send()).status).toBe(200);
    // All were pushed and last used two days ago, as far as the database knows.
    const db = new SQLite(join(dir.path, "server.db"));
    const old = Date.now() - 2 * 86_400_000;
    db.prepare("update object set created_at = ?, last_accessed_at = ?").run(old, old);
    const auth = { authorization: `Bearer ${token}` };
    // Catch a flush as it happens (the probe's hit reaches the database), so that the next hit
    // surely stays in the api-server's memory for most of an interval.
    expect((await fetch(`${daemon.url}/main/${probe!.hash}.narinfo`, { headers: auth })).status).toBe(200);
    const accessed = db.prepare("select last_accessed_at as t from object where store_path_hash = ?");
    while ((accessed.get(probe!.hash) as { t: number }).t === old) await new Promise((r) => setTimeout(r, 20));
    db.close();
    // A hit now: the api-server holds it in memory until its next flush, ~10 s away.
    expect((await fetch(`${daemon.url}/main/${used!.hash}.narinfo`, { headers: auth })).status).toBe(200);
    const gc = await runLarderd(["--config", config, "--mode", "garbage-collector-once"]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stderr).toContain("waiting 20000 ms for access times");
    expect(JSON.parse(gc.stdout.trim().split("\n").at(-1) as string)).toMatchObject({ objects: 1 });
    expect((await fetch(`${daemon.url}/main/${used!.hash}.narinfo`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${daemon.url}/main/${unused!.hash}.narinfo`, { headers: auth })).status).toBe(404);
  }, 90_000);
});
