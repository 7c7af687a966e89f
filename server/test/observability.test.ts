/** /metrics counts what happened, in Prometheus text; health says 503 when the database is gone. */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the Prometheus text format (0.0.4): every line must be a comment or a sample. */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

describe("metrics and health", () => {
  let l: Larder;
  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    await createTestCache(l, "m");
  });
  afterAll(() => l?.stop());

  it("counts a test's requests by route and status, narinfo misses, and latency", async () => {
    const token = await l.token({ pull: ["m"] });
    const before = parsePrometheus(await (await fetch(`${l.url}/metrics`)).text());
    for (let i = 0; i < 7; i++) await fetch(`${l.url}/m/${"0".repeat(32)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 3; i++) await fetch(`${l.url}/m/nix-cache-info`);
    const res = await fetch(`${l.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0.0.4/);
    const after = parsePrometheus(await res.text());
    const delta = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    expect(delta("larder_http_requests_total", { route: "/:cache/:file", method: "GET", status: "404" })).toBe(7);
    expect(delta("larder_http_requests_total", { route: "/:cache/nix-cache-info", method: "GET", status: "401" })).toBe(3);
    expect(delta("larder_narinfo_requests_total", { result: "miss" })).toBe(7);
    expect(delta("larder_http_request_duration_seconds_count", { route: "/:cache/:file", method: "GET" })).toBe(7);
    expect(value(after, "larder_uploads_in_flight")).toBe(0);
  });

  it("logs JSON lines with a request id, and why a token was refused", async () => {
    const lines: string[] = [];
    const logged = await startLarder("sqlite-local", { logLines: lines });
    try {
      await createTestCache(logged, "priv");
      const res = await fetch(`${logged.url}/priv/nix-cache-info`, { headers: { authorization: "Bearer not.a.token", "x-request-id": "req-42" } });
      expect(res.status).toBe(401);
      const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records).toContainEqual(expect.objectContaining({ reqId: "req-42", authFailure: "token is malformed" }));
      expect(records).toContainEqual(expect.objectContaining({ reqId: "req-42", msg: "access denied" }));
      // The refused token itself never reaches the log.
      expect(lines.join("\n")).not.toContain("not.a.token");
    } finally {
      await logged.stop();
    }
  });

  it("answers health 200 while the database and storage answer", async () => {
    const res = await fetch(`${l.url}/_api/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", database: "ok", storage: "ok" });
  });

  it.skipIf(!postgresAvailable("health must notice a lost PostgreSQL"))("answers health 503 when the database is gone", async () => {
    const p = await startLarder("postgres-s3");
    try {
      expect((await fetch(`${p.url}/_api/v1/health`)).status).toBe(200);
      const url = new URL(p.config.databaseUrl);
      const name = url.pathname.slice(1);
      url.pathname = "/postgres";
      const admin = new pg.Client({ connectionString: url.toString() });
      await admin.connect();
      await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
      await admin.end();
      const res = await fetch(`${p.url}/_api/v1/health`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: "unavailable", database: "unavailable", storage: "ok" });
      const metrics = parsePrometheus(await (await fetch(`${p.url}/metrics`)).text());
      expect(value(metrics, "larder_backend_errors_total", { backend: "database" })).toBeGreaterThan(0);
    } finally {
      await p.server.app.close();
      await p.s3?.stop();
      await p.dir.cleanup();
    }
  });
});
