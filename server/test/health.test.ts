/**
 * Health as a load balancer sees it: answered whatever the Host header (an ALB probes targets by
 * private address) while every other route keeps the allowed-hosts check; liveness never
 * depends on the database; readiness fails while the database cannot take writes.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, startLarder, type Larder } from "./support/larder.ts";
import { globalPostgres, postgresAvailable } from "./support/postgres.ts";
import { rawRequest } from "./support/raw-http.ts";
import { createCache, pushPath } from "./support/load.ts";

const get = (l: Larder, path: string, host: string) => rawRequest(l.url, [`GET ${path} HTTP/1.1`, `Host: ${host}`, "Connection: close"]);

describe.each(BACKENDS)("health on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("health on PostgreSQL");
  let l: Larder;
  beforeAll(async () => {
    if (!skip) l = await startLarder(backend, { extraToml: `allowed-hosts = ["cache.example.com"]` });
  });
  afterAll(() => l?.stop());

  it.skipIf(skip)("answers the load balancer at a private address, and nothing else does", async () => {
    for (const path of ["/_api/v1/health", "/_api/v1/health/live", "/_api/v1/health?probe=alb"]) {
      const r = await get(l, path, "10.0.3.17");
      expect(r.status, path).toBe(200);
      expect(r.headers["cache-control"]).toBe("no-store");
    }
    expect((await get(l, "/_api/v1/health", "10.0.3.17")).json()).toEqual({ status: "ok", database: "ok", storage: "ok" });
    expect((await get(l, "/_api/v1/health/live", "10.0.3.17")).json()).toEqual({ status: "ok" });
    for (const path of ["/nix-cache-info", "/main/nix-cache-info", "/_api/v1/cache-config/main", "/metrics", "/_api/v1/health/", "/_api/v1/healthz", "/_api/v1/health/live/x"]) {
      const r = await get(l, path, "10.0.3.17");
      expect(r.status, path).toBe(400);
      expect(r.text, path).toContain("Bad Host");
    }
    // The configured name still works everywhere.
    expect((await get(l, "/_api/v1/health", "cache.example.com")).status).toBe(200);
    expect((await get(l, "/_api/v1/cache-config/main", "cache.example.com")).status).not.toBe(400);
  });
});

describe.skipIf(!postgresAvailable("readiness with a read-only PostgreSQL"))("readiness with a read-only PostgreSQL", () => {
  let l: Larder;
  let admin: pg.Client;
  let name: string;
  beforeAll(async () => {
    l = await startLarder("postgres-s3");
    admin = new pg.Client({ connectionString: globalPostgres().url });
    await admin.connect();
    name = new URL(l.config.databaseUrl).pathname.slice(1);
  });
  afterAll(async () => {
    await admin?.end();
    await l?.stop();
  });
  // The setting applies to new sessions: end larder's so its pool reconnects under it.
  const readOnly = async (on: boolean) => {
    await admin.query(`alter database "${name}" ${on ? "set default_transaction_read_only = on" : "reset default_transaction_read_only"}`);
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1`, [name]);
  };

  it("fails readiness (not liveness) while writes cannot succeed, and refuses pushes with 503", async () => {
    const cache = "ro";
    await createCache(l.url, l.rootToken, cache);
    expect((await fetch(`${l.url}/_api/v1/health`)).status).toBe(200);
    await readOnly(true);
    try {
      // A pooled connection that was ended answers "unavailable" once; then the pool reconnects.
      let body: unknown;
      for (let i = 0; i < 5; i++) {
        const ready = await fetch(`${l.url}/_api/v1/health`);
        expect(ready.status).toBe(503);
        body = await ready.json();
        if ((body as { database: string }).database !== "unavailable") break;
      }
      expect(body).toEqual({ status: "unavailable", database: "read-only", storage: "ok" });
      expect((await fetch(`${l.url}/_api/v1/health/live`)).status).toBe(200);
      const push = await pushPath(l.url, l.rootToken, cache).send();
      expect(push.status).toBe(503);
      expect(await push.json()).toMatchObject({ error: "ServiceUnavailable" });
      // Reads still work from a read-only database.
      expect((await fetch(`${l.url}/${cache}/nix-cache-info`, { headers: { authorization: `Bearer ${l.rootToken}` } })).status).toBe(200);
    } finally {
      await readOnly(false);
    }
    expect((await fetch(`${l.url}/_api/v1/health`)).status).toBe(200);
    expect((await pushPath(l.url, l.rootToken, cache).send()).status).toBe(200);
  });
});
