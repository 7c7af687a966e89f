/**
 * The EC2 host's secret refresher (nixos-modules/scripts.nix, awsSecrets), extracted with the real
 * Nix client and run as the host runs it — under bash's strict mode, with only the commands of
 * the packages aws-host.nix gives it on PATH — with stand-ins for `aws` (Secrets Manager: a
 * directory of secret values) and `systemctl` (records its calls), feeding larderd on a real
 * PostgreSQL + S3. An RDS rotation (the role's password changes, sessions end, the secret is
 * updated) reaches the running larderd through the file the refresher replaces, with no restart;
 * larderd signals the refused password (database.auth-failure-file) so the host fetches at once.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admin, terminateLarder, underLoad } from "./support/db-faults.ts";
import { runLarderd, startDaemon, type Daemon } from "./support/daemon.ts";
import { createCache } from "./support/load.ts";
import { clusterUnavailableReason, startPostgresCluster, type PostgresCluster } from "./support/postgres-cluster.ts";
import { missing, requireTool, which } from "./support/requirements.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const repo = resolve(import.meta.dirname, "../..");
const why = clusterUnavailableReason();
const reason = "the EC2 host's secret refresher feeding larderd on a real PostgreSQL";
const skip = !(requireTool("nix-instantiate", reason) && requireTool("jq", reason) && (why === null || missing(why, reason)));

/**
 * The commands the script may call, by the nixpkgs package aws-host.nix must list in its
 * runtimeInputs for them (a command missing there is "not found" on the host). aws and
 * systemctl are stand-ins; the rest are this machine's own.
 */
const COMMANDS: Record<string, string> = {
  aws: "pkgs.awscli2",
  systemctl: "config.systemd.package",
  jq: "pkgs.jq",
  curl: "pkgs.curl",
  grep: "pkgs.gnugrep",
  cmp: "pkgs.diffutils",
  find: "pkgs.findutils",
  ...Object.fromEntries(["mktemp", "chgrp", "chmod", "mv", "rm", "mkdir", "install", "sleep", "cat", "dirname"].map((c) => [c, "pkgs.coreutils"])),
};

describe.skipIf(skip)("EC2 host: Secrets Manager refresh into a running larderd (real PostgreSQL + S3)", () => {
  let cluster: PostgresCluster;
  let s3: S3rverHandle;
  let dir: TempDir;
  let daemon: Daemon;
  let token: string;
  let script: string;
  let bin: string;
  let secrets: string;
  let run: string;
  const cache = "load";
  const group = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();

  const setSecret = (id: string, value: string) => writeFileSync(join(secrets, id), value);
  const dbSecret = (password: string) => JSON.stringify({ username: "larder", password, engine: "postgres" });
  const systemctlCalls = () => (existsSync(join(dir.path, "systemctl.log")) ? readFileSync(join(dir.path, "systemctl.log"), "utf8").trim().split("\n") : []);
  const refresh = () => {
    const r = spawnSync("/bin/bash", ["-c", script], { encoding: "utf8", env: { PATH: bin, HOME: dir.path, SECRETS: secrets, LOG: join(dir.path, "systemctl.log") } });
    return { status: r.status, stderr: r.stderr };
  };

  beforeAll(async () => {
    [cluster, s3, dir] = await Promise.all([startPostgresCluster({ passwordAuth: true }), startS3rver(), makeTempDir("aws-secret-refresh")]);
    const password = `p@ss:${randomBytes(6).toString("hex")}/#`;
    await admin(cluster.url, `create role larder login password '${password}'`);
    await admin(cluster.url, "create database larder owner larder");

    secrets = join(dir.path, "secrets-manager");
    mkdirSync(secrets);
    setSecret("token-secret", randomBytes(48).toString("base64"));
    setSecret("db-secret", dbSecret(password));

    bin = join(dir.path, "bin");
    mkdirSync(bin);
    const standIn = (name: string, text: string) => {
      writeFileSync(join(bin, name), `#!/bin/bash\n${text}`);
      chmodSync(join(bin, name), 0o755);
    };
    // aws secretsmanager get-secret-value --region R --secret-id ID --query SecretString --output text
    standIn("aws", 'while [ $# -gt 0 ]; do if [ "$1" = --secret-id ]; then cat "$SECRETS/$2"; echo; exit; fi; shift; done; exit 2\n');
    standIn("systemctl", 'echo "$*" >> "$LOG"\n');
    for (const c of Object.keys(COMMANDS).filter((c) => c !== "aws" && c !== "systemctl")) {
      const found = which(c);
      if (found === null) throw new Error(`${c} is not on PATH`);
      symlinkSync(found, join(bin, c));
    }

    run = join(dir.path, "run-larder-aws");
    const args = {
      region: "eu-west-1", tokenSecretArn: "token-secret", databaseSecretArn: "db-secret",
      host: "127.0.0.1", port: String(cluster.port), name: "larder", sslParameters: "sslmode=disable", caFetch: null,
      dir: run, tokenFile: "token", databaseUrlFile: "database-url", databaseGroup: group,
    };
    const nixDir = join(dir.path, "nix");
    const text = JSON.parse(execFileSync("nix-instantiate", ["--readonly-mode", "--eval", "--strict", "--json", "--expr",
      `(import ${join(repo, "nixos-modules", "scripts.nix")}).awsSecrets (builtins.fromJSON ${JSON.stringify(JSON.stringify(args))})`], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: nixDir, NIX_STATE_DIR: join(nixDir, "state"), NIX_LOG_DIR: join(nixDir, "log"), NIX_CONF_DIR: nixDir },
    })) as string;
    // What writeShellApplication puts around it.
    script = `set -o errexit\nset -o nounset\nset -o pipefail\n${text}`;
  }, 120_000);

  afterAll(async () => {
    await daemon?.stop();
    await s3?.stop();
    await cluster?.stop();
    await dir?.cleanup();
  });

  it("aws-host.nix gives the script every package whose commands it calls", () => {
    const host = readFileSync(join(repo, "nixos-modules", "aws-host.nix"), "utf8");
    const inputs = /name = "larder-aws-secrets";\s*runtimeInputs = \[([^\]]*)\]/.exec(host)?.[1] ?? "";
    for (const pkg of new Set(Object.values(COMMANDS))) expect(inputs.split(/\s+/), pkg).toContain(pkg);
  });

  it("first run: writes the files (URL readable by larder's group, token root-only), starts larder", () => {
    const r = refresh();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(statSync(run).mode & 0o777).toBe(0o711);
    expect(statSync(join(run, "token")).mode & 0o777).toBe(0o400);
    const url = statSync(join(run, "database-url"));
    expect(url.mode & 0o777).toBe(0o440);
    expect(url.gid).toBe(process.getgid?.());
    expect(readdirSync(run).sort()).toEqual(["database-url", "token"]);
    expect(systemctlCalls()).toEqual(["start --no-block larder.service"]);
    // Nothing changed: nothing is rewritten and larder is left alone.
    const before = statSync(join(run, "database-url")).ino;
    expect(refresh().status).toBe(0);
    expect(statSync(join(run, "database-url")).ino).toBe(before);
    expect(systemctlCalls()).toHaveLength(1);
  });

  it("an RDS rotation reaches the running larderd through the refreshed file within 30 s, without a restart", async () => {
    const config = join(dir.path, "server.toml");
    const signal = join(dir.path, "state", "database-auth-failed");
    mkdirSync(join(dir.path, "state"));
    // As aws-host.nix configures it: the URL read in place, the token key a credential copy.
    writeFileSync(config, [
      `[database]\nurl-file = ${JSON.stringify(join(run, "database-url"))}\nauth-failure-file = ${JSON.stringify(signal)}`,
      `[storage]\ntype = "s3"\nregion = "${s3.region}"\nbucket = "${s3.bucket}"\nendpoint = "${s3.endpoint}"`,
      `[storage.credentials]\naccess_key_id = "${s3.credentials.accessKeyId}"\nsecret_access_key = "${s3.credentials.secretAccessKey}"`,
      `[compression]\ntype = "none"`,
      `[jwt.signing]\ntoken-hs256-secret-base64-file = ${JSON.stringify(join(run, "token"))}`,
    ].join("\n"));
    daemon = await startDaemon(config, "api-server");
    const minted = await runLarderd(["make-token", "--config", config, "--sub", "load", "--validity", "1h", "--pull", "*", "--push", "*", "--create-cache", "*"]);
    token = minted.stdout.trim().split("\n").at(-1) as string;
    await createCache(daemon.url, token, cache);
    const pid = daemon.child.pid;

    const rotated = `r0t@ted:${randomBytes(8).toString("hex")}%`;
    let refreshed: { status: number | null; stderr: string } = { status: null, stderr: "" };
    let signalled = "";
    const r = await underLoad({ daemon, token, cache }, async () => {
      // RDS rotation: the password changes, the secret gets the new one, open sessions end
      // (here: are ended); the next timer run fetches it.
      await admin(cluster.url, `alter role larder password '${rotated}'`);
      setSecret("db-secret", dbSecret(rotated));
      await terminateLarder(cluster);
      // larderd's next connection is refused (28P01) and it writes the signal file, on which the
      // host's path unit runs the refresher at once: done here by hand when the file appears.
      const deadline = Date.now() + 15_000;
      while (!existsSync(signal)) {
        if (Date.now() > deadline) throw new Error(`larderd wrote no ${signal} after its password was refused`);
        await new Promise((r) => setTimeout(r, 100));
      }
      signalled = readFileSync(signal, "utf8");
      refreshed = refresh();
    }, { recoverWithinMs: 30_000 });
    expect(signalled).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
    expect(refreshed.status).toBe(0);
    expect(refreshed.stderr).toContain("the database password changed");
    expect(r.tookMs).toBeLessThan(30_000);
    expect(daemon.child.pid).toBe(pid);
    expect(daemon.child.exitCode).toBeNull();
    // larder was neither restarted nor asked to be.
    expect(systemctlCalls()).toEqual(["start --no-block larder.service"]);
    expect(daemon.output()).not.toContain(rotated);
    expect(refreshed.stderr).not.toContain(rotated);
  }, 120_000);

  it("a malformed secret leaves the last good files in place; a new token key restarts larder", () => {
    const good = readFileSync(join(run, "database-url"), "utf8");
    setSecret("db-secret", '{"username":"larder"}');
    const bad = refresh();
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("is not JSON with username and password");
    expect(readFileSync(join(run, "database-url"), "utf8")).toBe(good);
    expect(readdirSync(run).sort()).toEqual(["database-url", "token"]);

    setSecret("db-secret", JSON.stringify({ username: "larder", password: "x" }));
    setSecret("token-secret", randomBytes(48).toString("base64"));
    const r = refresh();
    expect(r.status).toBe(0);
    expect(systemctlCalls().at(-1)).toBe("try-restart --no-block larder.service");
  });
});
