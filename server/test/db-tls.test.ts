/**
 * TLS to PostgreSQL against a real server with a certificate from a test CA: verified by default
 * once TLS is on, refused with a clear message against the wrong CA or a host name the
 * certificate does not name, unverified only when the URL says no-verify.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.ts";
import { openDb } from "../src/db/connect.ts";
import { sql } from "kysely";
import { clusterUnavailableReason, startPostgresCluster, type PostgresCluster } from "./support/postgres-cluster.ts";
import { globalPostgres, postgresAvailable } from "./support/postgres.ts";
import { missing, requireTool } from "./support/requirements.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const run = promisify(execFile);
const why = clusterUnavailableReason();
const skip = (why !== null && !missing(why, "PostgreSQL over TLS")) || !requireTool("openssl", "PostgreSQL over TLS (test certificates)") || !postgresAvailable("PostgreSQL over TLS");

const SECRET = Buffer.alloc(48, 7).toString("base64");

describe.skipIf(skip)("TLS to PostgreSQL", () => {
  let dir: TempDir;
  let cluster: PostgresCluster;
  let ca: string;
  let wrongCa: string;
  let dbUrl: URL;

  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir.path });
  const newCa = async (name: string) => {
    await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`);
    return join(dir.path, `${name}.crt`);
  };

  beforeAll(async () => {
    dir = await makeTempDir("db-tls");
    ca = await newCa("test-ca");
    wrongCa = await newCa("other-ca");
    await openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=db.internal");
    await writeFile(join(dir.path, "san.ext"), "subjectAltName=IP:127.0.0.1,DNS:db.internal\n");
    await openssl("x509", "-req", "-in", "server.csr", "-CA", "test-ca.crt", "-CAkey", "test-ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext");
    cluster = await startPostgresCluster({ tls: { cert: join(dir.path, "server.crt"), key: join(dir.path, "server.key") } });
    dbUrl = new URL(await cluster.createDatabase());
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    await dir?.cleanup();
  });

  const configFor = (url: string, extra = "") =>
    parseConfig(`[database]\nurl = ${JSON.stringify(url)}\n${extra}\n[storage]\ntype = "local"\npath = "/tmp/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${SECRET}"\n`).database;

  async function connect(url: string, extra = ""): Promise<{ ssl: boolean }> {
    const db = await openDb(configFor(url, extra));
    try {
      await db.migrate();
      const r = await sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(db.kysely);
      return r.rows[0] as { ssl: boolean };
    } finally {
      await db.close();
    }
  }
  const withQuery = (q: string, host = "127.0.0.1") => {
    const u = new URL(dbUrl);
    u.hostname = host;
    u.search = q;
    return u.toString();
  };

  it("verifies the server against database.ca-file (verify-full by default)", async () => {
    expect(await connect(withQuery(""), `ca-file = ${JSON.stringify(ca)}`)).toEqual({ ssl: true });
    expect(await connect(withQuery("?sslmode=verify-full"), `ca-file = ${JSON.stringify(ca)}`)).toEqual({ ssl: true });
    expect(await connect(withQuery(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`))).toEqual({ ssl: true });
  });

  it("refuses a server whose certificate another CA signed, naming the CA file", async () => {
    await expect(connect(withQuery("?sslmode=verify-full"), `ca-file = ${JSON.stringify(wrongCa)}`)).rejects.toThrow(
      new RegExp(`TLS certificate could not be verified \\(sslmode verify-full\\) against the authorities in ${wrongCa.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`),
    );
    // libpq's require is checked too, here against Node's roots, which do not hold the test CA.
    await expect(connect(withQuery("?sslmode=require"))).rejects.toThrow(/TLS certificate could not be verified .*set database.ca-file/);
  });

  it("checks the host name under verify-full, not under verify-ca", async () => {
    await expect(connect(withQuery("", "localhost"), `ca-file = ${JSON.stringify(ca)}`)).rejects.toThrow(/could not be verified .*localhost/i);
    expect(await connect(withQuery("?sslmode=verify-ca", "localhost"), `ca-file = ${JSON.stringify(ca)}`)).toEqual({ ssl: true });
  });

  it("skips verification only when the URL says no-verify, and stays plain with sslmode=disable", async () => {
    expect(await connect(withQuery("?sslmode=no-verify"))).toEqual({ ssl: true });
    expect(await connect(withQuery("?sslmode=disable"))).toEqual({ ssl: false });
    // pg's own environment variable does not override what the config decided.
    process.env.PGSSLMODE = "no-verify";
    try {
      await expect(connect(withQuery(""), `ca-file = ${JSON.stringify(wrongCa)}`)).rejects.toThrow(/could not be verified/);
    } finally {
      delete process.env.PGSSLMODE;
    }
  });

  it("says so when TLS is required and the server does not offer it", async () => {
    const shared = globalPostgres();
    const plain = new URL(await shared.createDatabase());
    plain.search = "?sslmode=verify-full";
    await expect(connect(plain.toString(), `ca-file = ${JSON.stringify(ca)}`)).rejects.toThrow(/TLS is required \(sslmode verify-full\) but the server does not offer it/);
    await shared.stop();
  });

  it.each([
    ["a missing CA file", "?sslmode=verify-full", `ca-file = "/nonexistent/rds-ca.pem"`, /database.ca-file: cannot read \/nonexistent\/rds-ca.pem: no such file/],
    ["a CA file without a certificate", "", `ca-file = "/etc/hostname"`, /database.ca-file: \/etc\/hostname holds no PEM certificate/],
    ["an unknown sslmode", "?sslmode=maybe", "", /sslmode "maybe" is not one of/],
    ["a CA file with sslmode=disable", "?sslmode=disable", `ca-file = "/etc/hostname"`, /ca-file is set but the URL says sslmode=disable/],
    ["client certificates", "?sslcert=/x.pem", "", /sslcert \(client certificates\) is not supported/],
  ])("refuses %s in the config, naming it", (_what, query, extra, message) => {
    expect(() => configFor(`postgres://u@db.internal/larder${query}`, extra)).toThrow(message);
  });
});
