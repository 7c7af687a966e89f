/**
 * Opens the metadata database named by a `sqlite://` or `postgres://` URL behind one Kysely
 * query layer. SQLite is the zero-config default (WAL, one process); PostgreSQL is for several
 * api-servers side by side.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql, type SqliteDatabase } from "kysely";
import { Migrator } from "kysely/migration";
import pg from "pg";
import { sqlitePath } from "../config/load.ts";
import { redactUrl } from "../config/database-url.ts";
import { migrationProvider, type Dialect } from "./migrations.ts";
import type { Database } from "./schema.ts";

export interface Db {
  readonly kysely: Kysely<Database>;
  readonly dialect: Dialect;
  /** Applies pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  /** Throws unless the database answers a trivial query (health checks). */
  check(): Promise<void>;
  close(): Promise<void>;
}

const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely prepares every query it runs, and better-sqlite3 compiles SQL on each prepare(): on
 * the narinfo path that compile was the largest cost (bench, docs/PERFORMANCE.md). The same few
 * texts recur, so keep their statements. A statement still being iterated is busy; a query that
 * needs it meanwhile gets a fresh one. The cache is cleared when full, since texts with a
 * variable number of placeholders would otherwise grow it without bound.
 */
function reusingStatements(database: SQLite.Database): SqliteDatabase {
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

export async function openDb(url: string): Promise<Db> {
  let kysely: Kysely<Database>;
  let dialect: Dialect;
  if (url.startsWith("sqlite:")) {
    const path = sqlitePath(url);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const database = new SQLite(path);
    database.pragma("journal_mode = WAL");
    database.pragma("synchronous = NORMAL");
    database.pragma("foreign_keys = ON");
    database.pragma("busy_timeout = 10000");
    database.pragma("temp_store = MEMORY");
    kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: reusingStatements(database) }) });
    dialect = "sqlite";
  } else {
    const pool = new pg.Pool({ connectionString: url, max: 16 });
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    pool.on("error", () => {});
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = "postgres";
  }
  return {
    kysely,
    dialect,
    async migrate() {
      const migrator = new Migrator({ db: kysely, provider: migrationProvider(dialect) });
      const { error, results } = await migrator.migrateToLatest();
      // The first query of every mode: say which database could not be reached (never its password).
      if (error) throw new Error(`database ${redactUrl(url)}: ${error instanceof Error ? error.message : String(error)}`);
      return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
    },
    async check() {
      await sql`select 1`.execute(kysely);
    },
    async close() {
      await kysely.destroy();
    },
  };
}
