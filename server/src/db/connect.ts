/**
 * Opens the metadata database named by a `sqlite://` or `postgres://` URL behind one Kysely
 * query layer. SQLite is the zero-config default (WAL, one process); PostgreSQL is for several
 * api-servers side by side.
 */
import { mkdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type SQLite from "better-sqlite3";
import { openSqlite } from "./sqlite-addon.ts";
import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import { Migrator } from "kysely/migration";
import pg from "pg";
import { sqlitePath, type DatabaseConfig } from "../config/load.ts";
import type { DatabaseTls } from "../config/database-tls.ts";
import { joinUrl, redactUrl, splitUrl } from "../config/database-url.ts";
import { readSecretFile } from "../config/secret-file.ts";
import { migrationProvider, type Dialect } from "./migrations.ts";
import { classify, classifyingDialect, DatabaseUnavailableError, isReadOnlyError } from "./errors.ts";
import type { Database } from "./schema.ts";

export interface Db {
  readonly kysely: Kysely<Database>;
  readonly dialect: Dialect;
  /** Applies pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  /** Throws unless the database answers a trivial query. */
  check(): Promise<void>;
  /** Throws unless the database accepts a write (readiness: a read-only database or replica fails it). */
  checkWritable(): Promise<void>;
  /** Whether `e` says the database is read-only. */
  isReadOnlyError(e: unknown): boolean;
  /**
   * SQLite only: runs a read in the calling thread and answers its first row, or NOT_NOW while a
   * transaction holds the connection (its writes are not committed yet; the query layer waits
   * for it). The narinfo lookup reads through this without the query layer's promises, which
   * cost as much as SQLite's own work (bench/access-writes.ts, docs/PERFORMANCE.md). Failures
   * are classified as through the query layer.
   */
  readNow?: <R>(text: string, parameters: readonly unknown[]) => R | undefined | typeof NOT_NOW;
  close(): Promise<void>;
}

/** `Db.readNow`'s answer when the read has to go through the query layer. */
export const NOT_NOW: unique symbol = Symbol("not now");

const STATEMENT_CACHE_SIZE = 500;
const SQLITE_CACHE_KIB = 32 * 1024;
const SQLITE_MMAP_BYTES = 256 * 1024 * 1024;
/** How long a request waits for a new PostgreSQL connection before it gets a 503 (a failover black-holes packets). */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Kysely prepares every query it runs, and better-sqlite3 compiles SQL on each prepare(): on
 * the narinfo path that compile was the largest cost (bench, docs/PERFORMANCE.md). The same few
 * texts recur, so keep their statements. A statement still being iterated is busy; a query that
 * needs it meanwhile gets a fresh one. The cache is cleared when full, since texts with a
 * variable number of placeholders would otherwise grow it without bound.
 */
function reusingStatements(database: SQLite.Database): { close(): void; prepare(text: string): SQLite.Statement } {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => database.close(),
    prepare(text: string) {
      let stmt = statements.get(text);
      if (stmt === undefined || stmt.busy) {
        stmt = database.prepare(text);
        if (statements.size >= STATEMENT_CACHE_SIZE) statements.clear();
        statements.set(text, stmt);
      }
      return stmt;
    },
  };
}

// int8 columns (sizes, epoch-ms times) fit in a double; strings would leak into every caller.
pg.types.setTypeParser(20, (v: string) => Number(v));

/**
 * The password of every new connection, when it lives in a file: read again for each connection,
 * so a rotated credential (RDS rotates weekly; the host rewrites the file) is used from the first
 * connection after the file changes, with no restart. A file that cannot be read at that moment
 * (mid-rewrite) leaves the last good password in use.
 */
function passwordFrom(source: NonNullable<DatabaseConfig["passwordSource"]>, initial: string): () => Promise<string> {
  let last = initial;
  return async () => {
    try {
      const text = readSecretFile(source.path);
      const password = source.kind === "password-file" ? text : splitUrl(text)?.password;
      if (password !== undefined && password !== "") last = password;
    } catch {
      // Keep the last good one; a wrong password is reported by the database.
    }
    return last;
  };
}

function sslOptions(tls: DatabaseTls | undefined): pg.ClientConfig["ssl"] {
  if (tls === undefined) return false;
  if (tls.mode === "no-verify") return { rejectUnauthorized: false };
  return {
    rejectUnauthorized: true,
    ...(tls.ca !== undefined && { ca: tls.ca }),
    // verify-ca: the chain, not the name (a server reached through an address its certificate does not list).
    ...(tls.mode === "verify-ca" && { checkServerIdentity: () => undefined }),
  };
}

/** The first error of a mode, in words an operator can act on (never the password). */
function describeConnectError(error: unknown, tls: DatabaseTls | undefined): string {
  const cause = error instanceof DatabaseUnavailableError ? error.cause : error;
  const message = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as { code?: unknown }).code;
  if (tls !== undefined && typeof code === "string" && /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(code)) {
    const against = tls.caFile !== undefined ? `the authorities in ${tls.caFile}` : "Node's root certificates (set database.ca-file, e.g. to the RDS CA bundle)";
    return `the server's TLS certificate could not be verified (sslmode ${tls.mode}) against ${against}: ${message}`;
  }
  if (tls !== undefined && /does not support SSL/i.test(message)) return `TLS is required (sslmode ${tls.mode}) but the server does not offer it`;
  return message;
}

/** PostgreSQL's invalid_password: the role's password changed (a rotation) or the file is stale. */
const INVALID_PASSWORD = "28P01";
const AUTH_FAILURE_SIGNAL_INTERVAL_MS = 30_000;

/**
 * Writes the time to `path` when a connection is refused for its password, at most every 30 s, so a
 * secrets agent watching the file fetches the rotated password now. Failing to write is ignored:
 * the agent's schedule still comes.
 */
function authFailureSignal(path: string): (error: unknown) => void {
  let last = 0;
  return (error) => {
    if ((error as { code?: unknown } | null)?.code !== INVALID_PASSWORD) return;
    const now = Date.now();
    if (now - last < AUTH_FAILURE_SIGNAL_INTERVAL_MS) return;
    last = now;
    writeFile(path, `${new Date(now).toISOString()}\n`).catch(() => {});
  };
}

function clientWithPassword(password: () => Promise<string>, onConnectError: (error: unknown) => void): typeof pg.Client {
  return class extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // Not enumerable, as pg keeps it, so it never shows in a logged client.
      Object.defineProperty(this, "password", { configurable: true, enumerable: false, writable: true, value: password });
    }

    // The pool connects with a callback; a caller outside it may take the promise.
    override connect(): Promise<pg.Client>;
    override connect(callback: (err: Error) => void): void;
    override connect(callback?: (err: Error) => void): Promise<pg.Client> | void {
      if (callback !== undefined) {
        super.connect((err: Error) => {
          if (err) onConnectError(err);
          callback(err);
        });
        return;
      }
      return super.connect().catch((err: unknown) => {
        onConnectError(err);
        throw err;
      });
    }
  };
}

export async function openDb(target: string | DatabaseConfig): Promise<Db> {
  const { url, passwordSource, authFailureFile, tls } = typeof target === "string" ? ({ url: target } as DatabaseConfig) : target;
  let kysely: Kysely<Database>;
  let dialect: Dialect;
  let readNow: Db["readNow"];
  if (url.startsWith("sqlite:")) {
    const path = sqlitePath(url);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const database = openSqlite(path);
    database.pragma("journal_mode = WAL");
    database.pragma("synchronous = NORMAL");
    database.pragma("foreign_keys = ON");
    database.pragma("busy_timeout = 10000");
    database.pragma("temp_store = MEMORY");
    // Lookups by random store-path hash touch random index pages: SQLite's default 2 MiB page
    // cache made most of them a read() of the OS cache (get-missing-paths at 1M objects; bench).
    // Pages are read through a memory map instead, and more are kept.
    database.pragma(`cache_size = -${SQLITE_CACHE_KIB}`);
    database.pragma(`mmap_size = ${SQLITE_MMAP_BYTES}`);
    const statements = reusingStatements(database);
    kysely = new Kysely<Database>({ dialect: classifyingDialect(new SqliteDialect({ database: statements })) });
    dialect = "sqlite";
    readNow = <R>(text: string, parameters: readonly unknown[]) => {
      if (database.inTransaction || !database.open) return NOT_NOW;
      try {
        return statements.prepare(text).get(...parameters) as R | undefined;
      } catch (e) {
        throw classify(e);
      }
    };
  } else {
    const parts = splitUrl(url);
    const password = passwordSource !== undefined && parts?.password !== undefined ? passwordFrom(passwordSource, parts.password) : undefined;
    const pool = new pg.Pool({
      // pg lets a password in the URL win over a password function, even an empty one: the URL
      // goes without it, and each client is handed the function.
      connectionString: password && parts ? joinUrl({ ...parts, password: undefined }) : url,
      ...(password && { Client: clientWithPassword(password, authFailureFile !== undefined ? authFailureSignal(authFailureFile) : () => {}) }),
      ssl: sslOptions(tls),
      max: 16,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // A connection the server drops (restart, failover, pg_terminate_backend) makes its client
    // emit 'error' — while idle in the pool, and also while checked out, between the queries of
    // a transaction or after its last one. Unheard, that event ends the process. The query in
    // flight fails on its own (and becomes a 503); the broken client leaves the pool when it is
    // released, and the next checkout connects afresh.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    kysely = new Kysely<Database>({ dialect: classifyingDialect(new PostgresDialect({ pool })) });
    dialect = "postgres";
  }
  return {
    kysely,
    dialect,
    async migrate() {
      const migrator = new Migrator({ db: kysely, provider: migrationProvider(dialect) });
      const { error, results } = await migrator.migrateToLatest();
      // The first query of every mode: say which database could not be reached (never its password).
      if (error) throw new Error(`database ${redactUrl(url)}: ${describeConnectError(error, tls)}`);
      return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
    },
    async check() {
      await sql`select 1`.execute(kysely);
    },
    async checkWritable() {
      // A DELETE that matches nothing still needs a writable database: PostgreSQL refuses it in a
      // read-only transaction (default_transaction_read_only, a standby), SQLite on a read-only file.
      await kysely.deleteFrom("storage_journal").where(sql<boolean>`1 = 0`).execute();
    },
    isReadOnlyError,
    ...(readNow && { readNow }),
    async close() {
      await kysely.destroy();
    },
  };
}
