import { inject } from "vitest";
import { clusterUnavailableReason, connectPostgres, type PostgresHandle } from "./postgres-cluster.ts";
import { missing } from "./requirements.ts";

export { startPostgres, connectPostgres, type PostgresHandle } from "./postgres-cluster.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the run's shared PostgreSQL server, "" when there is none (see postgresError). */
    postgresUrl: string;
    /** Why test/global-setup.ts has no server for this run, "" when it has one. */
    postgresError: string;
  }
}

/**
 * Whether PostgreSQL tests can run: true with LARDER_TEST_POSTGRES_URL or the server binaries; otherwise false
 * (skip, with the reason printed), or an Error under CI=true.
 */
export function postgresAvailable(reason: string): boolean {
  if (process.env.LARDER_TEST_POSTGRES_URL) return true;
  const why = clusterUnavailableReason();
  return why === null ? true : missing(why, reason);
}

/**
 * The server that test/global-setup.ts started once for this `vitest run`. Call createDatabase() per test file
 * for isolation; stop() drops the databases this handle created and leaves the server running.
 */
export function globalPostgres(): PostgresHandle {
  const url = inject("postgresUrl");
  if (!url) {
    throw new Error(`no shared test PostgreSQL in this run: ${inject("postgresError") || "global setup did not run"}`);
  }
  return connectPostgres(url);
}
