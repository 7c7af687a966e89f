// Once per `vitest run` of the server project: one PostgreSQL for every test file (each makes its own database).
import type { TestProject } from "vitest/node";
import { clusterUnavailableReason, startPostgres } from "./support/postgres-cluster.ts";

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  project.provide("postgresError", "");
  if (process.env.LARDER_TEST_POSTGRES_URL) {
    project.provide("postgresUrl", process.env.LARDER_TEST_POSTGRES_URL);
    return undefined;
  }
  const unavailable = clusterUnavailableReason();
  if (unavailable !== null) {
    // Not fatal here: tests that need PostgreSQL skip (or fail under CI) through postgresAvailable().
    project.provide("postgresUrl", "");
    project.provide("postgresError", unavailable);
    return undefined;
  }
  try {
    const pg = await startPostgres();
    project.provide("postgresUrl", pg.url);
    return () => pg.stop();
  } catch (err) {
    // Failing the whole run would also fail tests that never touch PostgreSQL; globalPostgres() reports it instead.
    project.provide("postgresUrl", "");
    project.provide("postgresError", err instanceof Error ? err.message : String(err));
    return undefined;
  }
}
