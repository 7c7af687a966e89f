/**
 * Which database failures mean "the database is unavailable right now" — a restart, a failover,
 * a refused or rotated password, a read-only or full database, a lock timeout — as opposed to a
 * statement the database rejected (a constraint, a bug). The first kind becomes a 503 for the
 * request in flight, so clients retry; the second keeps its meaning for the code that asked.
 * Every query passes through `classifyingDialect`, so no caller has to remember this.
 */
import type { DatabaseConnection, Dialect, Driver } from "kysely";
import { ServerError } from "../errors.ts";

export class DatabaseUnavailableError extends ServerError {
  constructor(cause: unknown) {
    super("ServiceUnavailable");
    this.cause = cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.message = `database unavailable: ${reason}`;
  }
}

// SQLSTATE classes and codes that say nothing about the statement and go away by themselves
// (or by an operator's action): connection exceptions, insufficient resources, operator
// intervention, system errors, serialization failures, read-only transactions, refused logins.
const UNAVAILABLE_CLASSES = new Set(["08", "53", "57", "58", "40", "28"]);
const UNAVAILABLE_CODES = new Set(["25006", "3D000", "55P03"]);

const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CANTOPEN|PROTOCOL|NOLFS|NOMEM)/;

// pg's own errors for a lost or unobtainable connection carry no SQLSTATE.
const CONNECTION_MESSAGES = /connection terminated|not queryable|timeout exceeded when trying to connect|connection has been discarded|Connection closed|Query read timeout|ECONNRE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|ENOTFOUND|EAI_AGAIN|self[- ]signed|certificate|SSL|TLS/i;

export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof DatabaseUnavailableError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    // errno names first: no SQLSTATE class begins with "E".
    if (/^E[A-Z]+$/.test(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_CODES.has(code);
    if (code.startsWith("SQLITE_")) return SQLITE_UNAVAILABLE.test(code);
  }
  return CONNECTION_MESSAGES.test(err.message);
}

/** A write refused because the database is read-only (25006: read-only transaction; SQLITE_READONLY*). */
export function isReadOnlyError(err: unknown): boolean {
  const e = err instanceof DatabaseUnavailableError ? err.cause : err;
  const code = (e as { code?: unknown } | null)?.code;
  return code === "25006" || (typeof code === "string" && code.startsWith("SQLITE_READONLY"));
}

export function classify(err: unknown): unknown {
  return isDatabaseUnavailable(err) && !(err instanceof DatabaseUnavailableError) ? new DatabaseUnavailableError(err) : err;
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw classify(e);
  }
}

/** The dialect with every driver and connection failure passed through `classify`. */
export function classifyingDialect(inner: Dialect): Dialect {
  return {
    createAdapter: () => inner.createAdapter(),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
    createDriver: () => classifyingDriver(inner.createDriver()),
  };
}

function classifyingDriver(driver: Driver): Driver {
  // The driver's own methods need its own connection objects back.
  const inners = new WeakMap<DatabaseConnection, DatabaseConnection>();
  const unwrap = (c: DatabaseConnection) => inners.get(c) ?? c;
  const wrap = (c: DatabaseConnection): DatabaseConnection => {
    const outer: DatabaseConnection = {
      executeQuery: (q, o) => guarded(() => c.executeQuery(q, o)),
      async *streamQuery(q, n, o) {
        try {
          yield* c.streamQuery(q, n, o);
        } catch (e) {
          throw classify(e);
        }
      },
      ...(c.cancelQuery && { cancelQuery: (p) => (c.cancelQuery as NonNullable<DatabaseConnection["cancelQuery"]>).call(c, p) }),
      ...(c.collectSessionInfo && { collectSessionInfo: () => guarded(() => (c.collectSessionInfo as () => Promise<void>).call(c)) }),
      ...(c.killSession && { killSession: (p) => (c.killSession as NonNullable<DatabaseConnection["killSession"]>).call(c, p) }),
    };
    inners.set(outer, c);
    return outer;
  };
  const d: Driver = {
    init: (o) => guarded(() => driver.init(o)),
    acquireConnection: (o) => guarded(async () => wrap(await driver.acquireConnection(o))),
    beginTransaction: (c, s) => guarded(() => driver.beginTransaction(unwrap(c), s)),
    commitTransaction: (c) => guarded(() => driver.commitTransaction(unwrap(c))),
    rollbackTransaction: (c) => guarded(() => driver.rollbackTransaction(unwrap(c))),
    releaseConnection: (c, o) => driver.releaseConnection(unwrap(c), o),
    destroy: (o) => driver.destroy(o),
  };
  if (driver.savepoint) d.savepoint = (c, n, q) => guarded(() => (driver.savepoint as NonNullable<Driver["savepoint"]>).call(driver, unwrap(c), n, q));
  if (driver.rollbackToSavepoint) d.rollbackToSavepoint = (c, n, q) => guarded(() => (driver.rollbackToSavepoint as NonNullable<Driver["rollbackToSavepoint"]>).call(driver, unwrap(c), n, q));
  if (driver.releaseSavepoint) d.releaseSavepoint = (c, n, q) => guarded(() => (driver.releaseSavepoint as NonNullable<Driver["releaseSavepoint"]>).call(driver, unwrap(c), n, q));
  return d;
}
