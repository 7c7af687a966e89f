/**
 * PostgreSQL failing under load, against larderd as its own process on PostgreSQL + S3: a restart
 * (an RDS failover), a crash, sessions terminated, and a rotated password. larderd must not exit,
 * must answer 503 (never 500, never a dropped connection) while the database is away, must serve
 * again by itself, and must never show half of a push.
 */
import { randomBytes } from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterUnavailableReason, startPostgresCluster, type PostgresCluster } from "./support/postgres-cluster.ts";
import { missing } from "./support/requirements.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";
import { runLarderd, startDaemon, type Daemon } from "./support/daemon.ts";
import { createCache } from "./support/load.ts";
import { admin, terminateLarder, underLoad as underLoadOf } from "./support/db-faults.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const why = clusterUnavailableReason();
const skip = why !== null && !missing(why, "PostgreSQL faults under load (needs a cluster of its own to restart)");

describe.skipIf(skip)("PostgreSQL faults under load (8 clients pushing and pulling)", () => {
  let cluster: PostgresCluster;
  let s3: S3rverHandle;
  let dir: TempDir;
  let daemon: Daemon;
  let token: string;
  let passwordFile: string;
  const cache = "load";

  const setPassword = async (password: string) => {
    // As a secrets agent does: write beside, then rename over, so no reader sees half a file.
    await writeFile(`${passwordFile}.new`, `${password}\n`, { mode: 0o600 });
    await rename(`${passwordFile}.new`, passwordFile);
  };

  beforeAll(async () => {
    cluster = await startPostgresCluster({ passwordAuth: true, durable: true });
    s3 = await startS3rver();
    dir = await makeTempDir("db-faults");
    // RDS-style: a login role with a generated password that holds characters URLs reserve.
    const password = `p@ss:${randomBytes(6).toString("hex")}/#`;
    await admin(cluster.url, `create role larder login password '${password}'`);
    await admin(cluster.url, "create database larder owner larder");
    passwordFile = join(dir.path, "database-password");
    await setPassword(password);
    const config = join(dir.path, "server.toml");
    await writeFile(
      config,
      [
        `[database]`,
        `url = "postgres://larder@127.0.0.1:${cluster.port}/larder"`,
        `password-file = ${JSON.stringify(passwordFile)}`,
        `[storage]\ntype = "s3"\nregion = "${s3.region}"\nbucket = "${s3.bucket}"\nendpoint = "${s3.endpoint}"`,
        `[storage.credentials]\naccess_key_id = "${s3.credentials.accessKeyId}"\nsecret_access_key = "${s3.credentials.secretAccessKey}"`,
        `[compression]\ntype = "none"`,
        `[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"`,
      ].join("\n"),
    );
    daemon = await startDaemon(config, "api-server");
    const minted = await runLarderd(["make-token", "--config", config, "--sub", "load", "--validity", "1h", "--pull", "*", "--push", "*", "--create-cache", "*"]);
    token = minted.stdout.trim().split("\n").at(-1) as string;
    await createCache(daemon.url, token, cache);
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await s3?.stop();
    await cluster?.stop();
    await dir?.cleanup();
  });

  const underLoad = (fault: () => Promise<void>, opts: { recoverWithinMs: number }) => underLoadOf({ daemon, token, cache }, fault, opts);

  it("survives a restart of PostgreSQL (a failover) and serves again by itself", async () => {
    const r = await underLoad(() => cluster.restart("fast", 2000), { recoverWithinMs: 30_000 });
    expect(r.failed).toBeGreaterThan(0); // the outage was seen, and answered with 503s
  }, 120_000);

  it("survives a crash of PostgreSQL (immediate shutdown)", async () => {
    await underLoad(() => cluster.restart("immediate", 1000), { recoverWithinMs: 30_000 });
  }, 120_000);

  it("survives its sessions being terminated, on idle and checked-out connections", async () => {
    await underLoad(async () => {
      for (let i = 0; i < 5; i++) {
        await terminateLarder(cluster);
        await new Promise((r) => setTimeout(r, 150));
      }
    }, { recoverWithinMs: 30_000 });
  }, 120_000);

  it("picks up a rotated password from its file without a restart", async () => {
    const rotated = `r0t@ted:${randomBytes(8).toString("hex")}%`;
    const r = await underLoad(async () => {
      // What RDS rotation looks like from larderd: the role's password changes, the sessions end
      // (here: are ended), and the host's secrets agent rewrites the file a little later.
      await admin(cluster.url, `alter role larder password '${rotated}'`);
      await terminateLarder(cluster);
      await new Promise((r) => setTimeout(r, 2000));
      await setPassword(rotated);
    }, { recoverWithinMs: 30_000 });
    expect(r.tookMs).toBeLessThan(30_000);
    expect(daemon.output()).not.toContain(rotated);
    expect(daemon.output()).not.toContain("p@ss:");
  }, 120_000);
});
