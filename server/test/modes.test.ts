/**
 * The production shape: api-servers side by side on one PostgreSQL + S3, a one-shot GC beside
 * them, and GC runs killed with SIGKILL at chosen points, then completed by the next run.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNixEnv, closureSummary, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { globalPostgres, postgresAvailable } from "./support/postgres.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";
import { runLarderd, startDaemon, type Daemon } from "./support/daemon.ts";
import { buildDag, rng } from "./support/dag.ts";
import { createS3Storage } from "../src/storage/s3.ts";

const ready = requireTool("nix", "the production-shape test pushes and pulls with real Nix") && postgresAvailable("api-servers share PostgreSQL");

describe.skipIf(!ready)("api-servers on PostgreSQL + S3 with a separate garbage collector", () => {
  let dir: TempDir;
  let s3: S3rverHandle;
  let dbUrl: string;
  let configFile: string;
  let servers: Daemon[] = [];
  let nix: NixEnv;
  let rootToken: string;

  const query = async <T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    dir = await makeTempDir("modes");
    s3 = await startS3rver();
    dbUrl = await globalPostgres().createDatabase();
    configFile = join(dir.path, "server.toml");
    await writeFile(
      configFile,
      `spool-dir = "${join(dir.path, "spool")}"
[database]
url = "${dbUrl}"
[storage]
type = "s3"
region = "${s3.region}"
bucket = "${s3.bucket}"
endpoint = "${s3.endpoint}"
[storage.credentials]
access_key_id = "${s3.credentials.accessKeyId}"
secret_access_key = "${s3.credentials.secretAccessKey}"
[garbage-collection]
interval = "0s"
grace-period = "1s"
access-flush-interval = "1s"
[jwt.signing]
token-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"
`,
    );
    const migrated = await runLarderd(["--config", configFile, "--mode", "db-migrations"]);
    expect(migrated.code, migrated.stderr).toBe(0);
    servers = [await startDaemon(configFile, "api-server"), await startDaemon(configFile, "api-server")];
    const minted = await runLarderd(["make-token", "--config", configFile, "--sub", "admin", "--validity", "1h", "--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*", "--configure-cache-retention", "*"]);
    rootToken = minted.stdout.trim().split("\n").at(-1) as string;
    nix = await createNixEnv();
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await nix?.cleanup();
    await s3?.stop();
    await dir?.cleanup();
  });

  async function createCache(base: string, name: string, retention?: number): Promise<string> {
    const headers = { authorization: `Bearer ${rootToken}`, "content-type": "application/json" };
    const made = await fetch(`${base}/_api/v1/cache-config/${name}`, { method: "POST", headers, body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }) });
    expect(made.status, await made.text()).toBe(200);
    if (retention !== undefined) {
      await fetch(`${base}/_api/v1/cache-config/${name}`, { method: "PATCH", headers, body: JSON.stringify({ retention_period: { Period: retention } }) });
    }
    return ((await (await fetch(`${base}/_api/v1/cache-config/${name}`, { headers })).json()) as { public_key: string }).public_key;
  }

  it("pulls through one api-server what was pushed through the other, while a one-shot GC runs beside them", async () => {
    const [a, b] = servers as [Daemon, Daemon];
    const pub = await createCache(a.url, "shared");
    await nix.setToken(a.url, rootToken);
    const top = await nix.buildClosure(`modes-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${a.url}/shared?compression=zstd`, top]);
    const gc = runLarderd(["--config", configFile, "--mode", "garbage-collector-once"]);
    const dst = nix.freshStore("via-b");
    await nix.nix(["nix", "copy", "--from", `${b.url}/shared`, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
    const done = await gc;
    expect(done.code, done.stderr + done.stdout).toBe(0);
    const stats = JSON.parse(done.stdout.trim().split("\n").at(-1) as string) as Record<string, number>;
    expect(Object.keys(stats).sort()).toEqual(["build_logs", "bytes_freed", "duration_ms", "nars", "objects", "realisations", "staged_expired", "storage_objects"]);
  });

  // GC deletes a small dead closure level by level inside one batch, so the object step of this
  // 24-path cache commits once: "objects:1" kills right after that commit, before the NAR step.
  // With batches of 4 (the test-only LARDER_TEST_GC_OBJECT_BATCH), "objects:2" kills between two
  // committed batches of the same closure, in the middle of the object step.
  for (const [killAt, batch] of [["objects:1"], ["objects:2", "4"], ["nars:1"], ["storage:3"]] as const) {
    it(`finishes a GC run killed with SIGKILL at ${killAt}${batch ? ` (object batches of ${batch})` : ""}, serving nothing that is missing`, async () => {
      const [a, b] = servers as [Daemon, Daemon];
      const cache = `crash-${killAt.replace(":", "-")}`;
      const pub = await createCache(a.url, cache, 3600);
      await nix.setToken(a.url, rootToken);
      const dag = await buildDag(nix, `${cache}-${randomBytes(3).toString("hex")}`, 24, rng(killAt.length * 31));
      await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${a.url}/${cache}?compression=zstd`, ...dag.paths]);
      // Everything but the last path (and what it needs) is old; NARs are past the grace period.
      const keep = dag.paths.at(-1) as string;
      await query(`update object set created_at = 0, last_accessed_at = 0 where cache_id = (select id from cache where name = $1) and store_path <> $2`, [cache, keep]);
      await query(`update nar set created_at = 0`);

      const count = async () => Number((await query<{ n: string }>(`select count(*) as n from object where cache_id = (select id from cache where name = $1)`, [cache]))[0]?.n);
      const before = await count();
      const killed = await runLarderd(["--config", configFile, "--mode", "garbage-collector-once"], { LARDER_TEST_GC_KILL_AT: killAt, ...(batch && { LARDER_TEST_GC_OBJECT_BATCH: batch }) });
      expect(killed.signal, killed.stdout + killed.stderr).toBe("SIGKILL");
      const atKill = await count();
      const again = await runLarderd(["--config", configFile, "--mode", "garbage-collector-once"]);
      expect(again.code, again.stderr).toBe(0);
      // The kill landed where it was meant to: inside the object step, after it, or (NAR and
      // storage steps) after every object delete was committed.
      if (batch) {
        expect(atKill).toBeLessThan(before);
        expect(atKill).toBeGreaterThan(await count());
      } else {
        expect(atKill).toBe(await count());
      }

      // Consistent: no journal left, every NAR row has its bytes and storage has nothing else.
      expect(await query(`select * from storage_journal`)).toEqual([]);
      const nars = await query<{ storage_key: string }>(`select storage_key from nar`);
      const storage = await createS3Storage(s3.storageConfig as never);
      const keys = new Set<string>();
      for await (const o of storage.list("nar/")) keys.add(o.key);
      expect(keys).toEqual(new Set(nars.map((n) => n.storage_key)));
      // Every path still served has all its references served; Nix installs them.
      const left = await query<{ store_path: string; refs: string }>(`select store_path, refs from object where cache_id = (select id from cache where name = $1)`, [cache]);
      const served = new Set(left.map((r) => r.store_path.slice("/nix/store/".length)));
      for (const r of left) for (const ref of JSON.parse(r.refs) as string[]) expect(served.has(ref), `${r.store_path} → ${ref}`).toBe(true);
      expect(left.map((r) => r.store_path)).toContain(keep);
      expect(left.length).toBeLessThan(dag.paths.length);
      const dst = nix.freshStore(cache);
      await nix.nix(["nix", "copy", "--from", `${b.url}/${cache}`, "--to", dst, "--option", "trusted-public-keys", pub, ...left.map((r) => r.store_path)]);
    });
  }
});
