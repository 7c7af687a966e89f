// The part of the PostgreSQL harness that runs anywhere (vitest's globalSetup included): no vitest imports here.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { findPostgresBin, which } from "./requirements.ts";
import { makeTempDir } from "./tmp.ts";
import { freePort } from "./free-port.ts";

const run = promisify(execFile);

export interface PostgresHandle {
  /** Superuser URL of the server's `postgres` database. */
  url: string;
  /** Throwaway cluster: shuts it down and deletes it. Shared server: drops the databases this handle created. */
  stop(): Promise<void>;
  /** Creates an empty database (default name random) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
}

/** Why a throwaway cluster cannot be started here, or null when it can. */
export function clusterUnavailableReason(): string | null {
  for (const bin of ["initdb", "pg_ctl", "postgres"]) {
    if (findPostgresBin(bin) === null) return `PostgreSQL's ${bin} is not installed (apt-get install postgresql)`;
  }
  if (process.getuid?.() === 0) {
    if (which("runuser") === null) return "running as root needs runuser to start PostgreSQL as the postgres user";
    if (systemUser("postgres") === null) return "running as root needs the postgres system user";
  }
  return null;
}

/** LARDER_TEST_POSTGRES_URL when set, otherwise a fresh cluster from the machine's PostgreSQL binaries. */
export async function startPostgres(): Promise<PostgresHandle> {
  const external = process.env.LARDER_TEST_POSTGRES_URL;
  if (external) return connectPostgres(external);
  return startCluster();
}

export interface ClusterOptions {
  /** TCP logins need a password (scram-sha-256), as on RDS; the superuser's is in `url`. */
  passwordAuth?: boolean;
  /** PEM files: the server then accepts TLS (and still plain connections). */
  tls?: { cert: string; key: string };
  /** Keep PostgreSQL's durability defaults (fsync, synchronous commit), so a crash loses nothing committed. */
  durable?: boolean;
}

/** A cluster of the test's own, for tests that stop, restart or reconfigure the server itself. */
export interface PostgresCluster extends PostgresHandle {
  port: number;
  /** Stops the server (`fast` ends sessions cleanly, `immediate` is a crash) and starts it again on the same port. */
  restart(mode?: "fast" | "immediate", downMs?: number): Promise<void>;
}

export function startPostgresCluster(opts: ClusterOptions = {}): Promise<PostgresCluster> {
  return startCluster(opts);
}

/** A handle on a server someone else runs: stop() only drops what this handle created. */
export function connectPostgres(url: string): PostgresHandle {
  const created: string[] = [];
  return {
    url,
    async createDatabase(name?: string): Promise<string> {
      const db = await createDatabaseIn(url, name);
      created.push(db);
      return withDatabase(url, db);
    },
    async stop(): Promise<void> {
      const names = created.splice(0);
      if (names.length === 0) return;
      await withClient(url, async (client) => {
        for (const db of names) await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      });
    },
  };
}

let cachedUser: { uid: number; gid: number } | null | undefined;
function systemUser(name: string): { uid: number; gid: number } | null {
  if (cachedUser !== undefined) return cachedUser;
  cachedUser = null;
  try {
    const passwd = readFileSync("/etc/passwd", "utf8");
    for (const line of passwd.split("\n")) {
      const [user, , uid, gid] = line.split(":");
      if (user === name && uid !== undefined && gid !== undefined) cachedUser = { uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    // No /etc/passwd: no such user.
  }
  return cachedUser;
}

async function startCluster(opts: ClusterOptions = {}): Promise<PostgresCluster> {
  const reason = clusterUnavailableReason();
  if (reason !== null) throw new Error(`cannot start a test PostgreSQL: ${reason}, or set LARDER_TEST_POSTGRES_URL`);
  const initdb = findPostgresBin("initdb")!;
  const pgCtl = findPostgresBin("pg_ctl")!;

  const dir = await makeTempDir("postgres");
  const dataDir = path.join(dir.path, "data");
  const socketDir = path.join(dir.path, "sock");
  const logFile = path.join(dir.path, "postgres.log");
  await mkdir(dataDir, { mode: 0o700 });
  await mkdir(socketDir, { mode: 0o700 });

  // initdb refuses to run as root; hand the whole directory to the postgres user and run as it.
  const asRoot = process.getuid?.() === 0;
  const exec = async (file: string, args: string[]): Promise<void> => {
    const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
    try {
      await run(cmd, argv, { cwd: dir.path, timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      const log = await readFile(logFile, "utf8").catch(() => "");
      throw new Error(`${path.basename(file)} failed: ${(e.stderr || e.message).trim()}${log ? `\n${log.slice(-2000)}` : ""}`);
    }
  };

  try {
    if (asRoot) {
      const user = systemUser("postgres")!;
      await chmod(dir.path, 0o700);
      for (const p of [dir.path, dataDir, socketDir]) await chown(p, user.uid, user.gid);
    }
    const superPassword = opts.passwordAuth ? randomBytes(12).toString("hex") : undefined;
    const auth = ["--auth=trust"];
    if (superPassword !== undefined) {
      const pwFile = path.join(dir.path, "pw");
      await writeFile(pwFile, superPassword, { mode: 0o600 });
      if (asRoot) await chown(pwFile, systemUser("postgres")!.uid, systemUser("postgres")!.gid);
      auth.splice(0, 1, "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwFile}`);
    }
    const tlsSettings: string[] = [];
    if (opts.tls) {
      // PostgreSQL refuses a key others can read, and must own it.
      const cert = path.join(dir.path, "server.crt");
      const key = path.join(dir.path, "server.key");
      await copyFile(opts.tls.cert, cert);
      await copyFile(opts.tls.key, key);
      await chmod(key, 0o600);
      if (asRoot) for (const f of [cert, key]) await chown(f, systemUser("postgres")!.uid, systemUser("postgres")!.gid);
      tlsSettings.push("-c ssl=on", `-c ssl_cert_file=${cert}`, `-c ssl_key_file=${key}`);
    }
    // --no-sync and the settings below trade durability for speed: this cluster lives for one test run.
    await exec(initdb, ["-D", dataDir, "-U", "postgres", ...auth, "-E", "UTF8", "--no-locale", "--no-sync"]);

    let port = 0;
    let settings = "";
    let lastError: unknown;
    // A free port can be taken between probing and binding; try a few.
    for (let attempt = 0; attempt < 3; attempt++) {
      port = await freePort();
      settings = [
        ...tlsSettings,
        `-p ${port}`,
        `-k ${socketDir}`,
        "-c listen_addresses=127.0.0.1",
        ...(opts.durable ? [] : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
        "-c max_connections=200",
      ].join(" ");
      try {
        await exec(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "30", "-o", settings, "start"]);
        lastError = undefined;
        break;
      } catch (err) {
        lastError = err;
      }
    }
    if (lastError !== undefined) throw lastError;

    const url = `postgres://postgres${superPassword ? `:${superPassword}` : ""}@127.0.0.1:${port}/postgres`;
    const shared = connectPostgres(url);
    let stopped: Promise<void> | undefined;
    return {
      url,
      port,
      async restart(mode = "fast", downMs = 0) {
        await exec(pgCtl, ["-D", dataDir, "-m", mode, "-w", "stop"]);
        if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
        await exec(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "30", "-o", settings, "start"]);
      },
      createDatabase: (name) => shared.createDatabase(name),
      stop() {
        stopped ??= (async () => {
          await exec(pgCtl, ["-D", dataDir, "-m", "fast", "-w", "stop"]);
          await dir.cleanup();
        })();
        return stopped;
      },
    };
  } catch (err) {
    // Stop a half-started server so it does not outlive the failed setup.
    await exec(pgCtl, ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(() => {});
    await rm(dir.path, { recursive: true, force: true });
    throw err;
  }
}

async function createDatabaseIn(adminUrl: string, name?: string): Promise<string> {
  const db = name ?? `larder_test_${randomBytes(6).toString("hex")}`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(db)) {
    throw new Error(`invalid test database name ${JSON.stringify(db)}: use 1-63 of [a-z0-9_], not starting with a digit`);
  }
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE "${db}"`));
  return db;
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

