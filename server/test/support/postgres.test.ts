import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { globalPostgres, postgresAvailable, startPostgres, type PostgresHandle } from "./postgres.ts";

const canRun = postgresAvailable("the PostgreSQL test harness");

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe.skipIf(!canRun)("startPostgres", () => {
  let server: PostgresHandle;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("serves queries on its URL", async () => {
    const rows = await query<{ n: number }>(server.url, "SELECT 40 + 2 AS n");
    expect(rows).toEqual([{ n: 42 }]);
  });

  it("gives each createDatabase call its own database", async () => {
    const a = await server.createDatabase();
    const b = await server.createDatabase();
    expect(a).not.toBe(b);
    await query(a, "CREATE TABLE t (v text)");
    await query(a, "INSERT INTO t VALUES ('only in a')");
    expect(await query(a, "SELECT v FROM t")).toEqual([{ v: "only in a" }]);
    await expect(query(b, "SELECT v FROM t")).rejects.toThrow(/relation "t" does not exist/);
    const [dbA] = await query<{ db: string }>(a, "SELECT current_database() AS db");
    expect(a.endsWith(`/${dbA?.db}`)).toBe(true);
  });

  it("creates a database with a given name and rejects unsafe names", async () => {
    const url = await server.createDatabase("harness_named");
    expect(await query(url, "SELECT current_database() AS db")).toEqual([{ db: "harness_named" }]);
    await expect(server.createDatabase('x"; DROP DATABASE postgres; --')).rejects.toThrow(/invalid test database name/);
  });

  it("stop() shuts the cluster down when it owns one", async () => {
    if (process.env.LARDER_TEST_POSTGRES_URL) return; // a shared server is not ours to stop
    const own = await startPostgres();
    await query(own.url, "SELECT 1");
    await own.stop();
    await expect(query(own.url, "SELECT 1")).rejects.toThrow();
  });
});

describe.skipIf(!canRun)("globalPostgres", () => {
  it("reaches the run's shared server, and stop() drops only the databases it made", async () => {
    const shared = globalPostgres();
    const url = await shared.createDatabase();
    const name = new URL(url).pathname.slice(1);
    expect(await query(url, "SELECT 1 AS one")).toEqual([{ one: 1 }]);
    await shared.stop();
    const left = await query(shared.url, "SELECT datname FROM pg_database WHERE datname = $1", [name]);
    expect(left).toEqual([]);
    expect(await query(shared.url, "SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });
});
