/**
 * The narinfo fast path (src/http/fast-reads.ts) answers exactly as the framework's routes do.
 * Two HTTP servers share one context (database, caches in memory, metrics, access tracker, log):
 * one with the fast path, one without. Every request of the table goes to both, after a first
 * one that fills what is kept in memory; status, headers (all but Date), body bytes, metric
 * deltas, access-time marks and request log lines must be the same, and the fast path must have
 * answered exactly the cases marked `fast` (the rest fall through to the framework).
 */
import { request } from "node:http";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startLarder, type Larder } from "./support/larder.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { startServer, type RunningServer } from "../src/server.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex } from "../src/nix/hash.ts";
import { fastReadsAnswered } from "../src/http/fast-reads.ts";

const HOST = "cache.example";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request as given (Host included, nothing added), one answer; HEAD-aware, unlike a raw socket read. */
function call(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers, setHost: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: { ...res.headers }, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Prometheus text → sample values, without latency buckets and sums (times differ run to run). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\S+?)(\{.*\})? (\S+)$/.exec(line);
    if (!m || line.startsWith("#") || /_bucket$|_sum$/.test(m[1] as string)) continue;
    out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

interface Case {
  name: string;
  method?: "GET" | "HEAD";
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Whether the fast path must answer it (after the first request filled memory). */
  fast: boolean;
  /** Drop the rendered narinfos before each request, so the fast path looks the path up. */
  cold?: boolean;
  /** Expire the memoised cache rows or the revocation list before each request, as time does every few seconds. */
  expire?: "cache-rows" | "revocations";
  status: number;
}

describe("narinfo fast path and framework path answer alike", () => {
  let l: Larder;
  let framework: RunningServer;
  const logLines: string[] = [];
  const t: Record<string, string> = {};
  let hit = "";
  let privHit = "";
  const absent = "00000000000000000000000000000000";

  beforeAll(async () => {
    l = await startLarder("sqlite-local", { extraToml: `allowed-hosts = ["${HOST}"]`, logLines });
    framework = await startServer({ ...l.config, listen: { host: "127.0.0.1", port: 0 } }, { ctx: l.server.ctx, fastReads: false });
    t.root = l.rootToken;
    t.pull = await l.token({ pull: ["priv"] });
    t.other = await l.token({ pull: ["elsewhere"] });
    t.pushOnly = await l.token({ push: ["priv"] });
    t.revoked = await l.token({ pull: ["priv"] }, "leaver");
    const admin = (method: string, path: string, body: unknown, extra: Record<string, string> = {}) =>
      call(l.url, method, path, { host: HOST, authorization: `Bearer ${t.root}`, "content-type": "application/json", ...extra }, Buffer.from(typeof body === "string" ? body : JSON.stringify(body)));
    const cache = (is_public: boolean) => ({ keypair: "Generate", is_public, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
    for (const [name, pub] of [["pub", true], ["priv", false], ["gone", true]] as const) expect((await admin("POST", `/_api/v1/cache-config/${name}`, cache(pub))).status).toBe(200);
    const dir = join(FIXTURES, "caches", "none");
    hit = "8prr02r3rvr10vchn6d5n2x7ksy1ld5x";
    privHit = "a3phgncn84kxx9h74fjk60x2bq3v8bs0";
    for (const [c, h] of [["pub", hit], ["priv", privHit], ["gone", hit]] as const) {
      const info = parseNarInfo(await readFile(join(dir, `${h}.narinfo`), "utf8"));
      const nar = await readFile(join(dir, info.url));
      const meta = { cache: c, store_path_hash: h, store_path: info.storePath, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: formatHex(info.narHash), nar_size: info.narSize };
      const res = await call(l.url, "PUT", "/_api/v1/upload-path", { host: HOST, authorization: `Bearer ${t.root}`, "x-attic-nar-info": JSON.stringify(meta), "content-length": String(nar.length) }, nar);
      expect(res.status, res.body.toString()).toBe(200);
    }
    expect((await admin("DELETE", "/_api/v1/cache-config/gone", "", { "content-type": "text/plain" })).status).toBe(200);
    const revoke = await call(l.url, "POST", "/_api/v1/revoke-token", { host: HOST, authorization: `Bearer ${t.revoked}`, "content-type": "application/json" }, Buffer.from("{}"));
    expect(revoke.status, revoke.body.toString()).toBe(200);
  });
  afterAll(async () => {
    await framework?.app.close();
    await l?.stop();
  });

  const bearer = (name: string) => ({ authorization: `Bearer ${t[name]}` });
  const basic = (name: string) => ({ authorization: `Basic ${Buffer.from(`nix:${t[name]}`).toString("base64")}` });
  const cases = (): Case[] => [
    { name: "public hit", path: `/pub/${hit}.narinfo`, fast: true, status: 200 },
    { name: "public hit, HEAD", method: "HEAD", path: `/pub/${hit}.narinfo`, fast: true, status: 200 },
    { name: "public hit, looked up", path: `/pub/${hit}.narinfo`, fast: true, cold: true, status: 200 },
    { name: "public hit under /_push", path: `/_push/pub/${hit}.narinfo`, fast: true, status: 200 },
    { name: "public miss", path: `/pub/${absent}.narinfo`, fast: true, status: 404 },
    { name: "public miss, HEAD", method: "HEAD", path: `/pub/${absent}.narinfo`, fast: true, status: 404 },
    { name: "public miss, looked up", path: `/pub/${absent}.narinfo`, fast: true, cold: true, status: 404 },
    { name: "public hit with a pull token for another cache", path: `/pub/${hit}.narinfo`, headers: bearer("other"), fast: true, status: 200 },
    { name: "nix-cache-info", path: "/pub/nix-cache-info", fast: true, status: 200 },
    { name: "nix-cache-info, HEAD", method: "HEAD", path: "/pub/nix-cache-info", fast: true, status: 200 },
    { name: "nix-cache-info under /_push", path: "/_push/pub/nix-cache-info", fast: true, status: 200 },
    { name: "private hit, Bearer", path: `/priv/${privHit}.narinfo`, headers: bearer("pull"), fast: true, status: 200 },
    { name: "private hit, lower-case bearer", path: `/priv/${privHit}.narinfo`, headers: { authorization: `bearer ${t.pull}` }, fast: true, status: 200 },
    { name: "private hit, Basic (netrc)", path: `/priv/${privHit}.narinfo`, headers: basic("pull"), fast: true, status: 200 },
    { name: "private hit, looked up", path: `/priv/${privHit}.narinfo`, headers: bearer("pull"), fast: true, cold: true, status: 200 },
    { name: "public hit, cache row expired", path: `/pub/${hit}.narinfo`, fast: true, expire: "cache-rows", status: 200 },
    { name: "private hit, cache row expired", path: `/priv/${privHit}.narinfo`, headers: bearer("pull"), fast: true, expire: "cache-rows", status: 200 },
    { name: "private hit, revocation list due", path: `/priv/${privHit}.narinfo`, headers: bearer("pull"), fast: true, expire: "revocations", status: 200 },
    { name: "private nix-cache-info, revocation list due", path: "/priv/nix-cache-info", headers: bearer("pull"), fast: true, expire: "revocations", status: 200 },
    { name: "private, revoked token, revocation list due", path: `/priv/${privHit}.narinfo`, headers: bearer("revoked"), fast: false, expire: "revocations", status: 401 },
    { name: "destroyed cache, cache row expired", path: `/gone/${hit}.narinfo`, fast: false, expire: "cache-rows", status: 401 },
    { name: "private miss", path: `/priv/${absent}.narinfo`, headers: bearer("pull"), fast: true, status: 404 },
    { name: "private nix-cache-info", path: "/priv/nix-cache-info", headers: bearer("pull"), fast: true, status: 200 },
    { name: "private, no token", path: `/priv/${privHit}.narinfo`, fast: false, status: 401 },
    { name: "private, no token, HEAD", method: "HEAD", path: `/priv/${privHit}.narinfo`, fast: false, status: 401 },
    { name: "private nix-cache-info, no token", path: "/priv/nix-cache-info", fast: false, status: 401 },
    { name: "private, token for another cache", path: `/priv/${privHit}.narinfo`, headers: bearer("other"), fast: false, status: 401 },
    { name: "private, push-only token", path: `/priv/${privHit}.narinfo`, headers: bearer("pushOnly"), fast: false, status: 403 },
    { name: "private, malformed token", path: `/priv/${privHit}.narinfo`, headers: { authorization: "Bearer not.a.token" }, fast: false, status: 401 },
    { name: "private, revoked token", path: `/priv/${privHit}.narinfo`, headers: bearer("revoked"), fast: false, status: 401 },
    { name: "public, malformed token", path: `/pub/${hit}.narinfo`, headers: { authorization: "Bearer not.a.token" }, fast: false, status: 200 },
    { name: "public, empty Bearer", path: `/pub/${hit}.narinfo`, headers: { authorization: "Bearer " }, fast: true, status: 200 },
    { name: "unknown cache", path: `/nosuch/${hit}.narinfo`, fast: false, status: 401 },
    { name: "unknown cache, root token", path: `/nosuch/${hit}.narinfo`, headers: bearer("root"), fast: false, status: 404 },
    { name: "destroyed cache", path: `/gone/${hit}.narinfo`, fast: false, status: 401 },
    { name: "destroyed cache, root token", path: `/gone/${hit}.narinfo`, headers: bearer("root"), fast: false, status: 404 },
    { name: "invalid cache name", path: `/-bad/${hit}.narinfo`, fast: false, status: 400 },
    { name: "bad hash", path: "/pub/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo", fast: false, status: 400 },
    { name: "short hash", path: "/pub/abc.narinfo", fast: false, status: 400 },
    { name: "upper-case hash", path: `/pub/${hit.toUpperCase()}.narinfo`, fast: false, status: 400 },
    { name: "other file name", path: `/pub/${hit}.narinf`, fast: false, status: 404 },
    { name: "query string", path: `/pub/${hit}.narinfo?x=1`, fast: false, status: 200 },
    { name: "percent-encoded hash", path: `/pub/%38${hit.slice(1)}.narinfo`, fast: false, status: 200 },
    { name: "percent-encoded cache", path: `/p%75b/${hit}.narinfo`, fast: false, status: 200 },
    { name: "trailing slash", path: `/pub/${hit}.narinfo/`, fast: false, status: 404 },
    { name: "double slash", path: `//pub/${hit}.narinfo`, fast: false, status: 404 },
    { name: "wrong Host", path: `/pub/${hit}.narinfo`, headers: { host: "evil.example" }, fast: false, status: 400 },
    { name: "Host with a port", path: `/pub/${hit}.narinfo`, headers: { host: `${HOST}:80` }, fast: false, status: 400 },
    { name: "no Host", path: `/pub/${hit}.narinfo`, headers: { host: "" }, fast: false, status: 400 },
    { name: "GET with a body", path: `/pub/${hit}.narinfo`, headers: { "content-length": "3" }, body: Buffer.from("abc"), fast: false, status: 401 },
    { name: "client's request id", path: `/pub/${hit}.narinfo`, headers: { "x-request-id": "abc-123" }, fast: true, status: 200 },
  ];

  it("gives the same answers, metrics, access marks and log lines on both paths", async () => {
    const ctx = l.server.ctx;
    const touch = vi.spyOn(ctx.accessTracker, "touch");
    const one = async (base: string, c: Case) => {
      if (c.cold) ctx.narInfos.clear();
      if (c.expire === "cache-rows") ctx.caches.invalidate();
      if (c.expire === "revocations") ctx.revocations.invalidate();
      const headers: Record<string, string> = { host: HOST, ...c.headers };
      if (headers.host === "") delete headers.host;
      const metricsBefore = samples(await ctx.metrics.registry.metrics());
      const fastBefore = fastReadsAnswered();
      touch.mockClear();
      const logFrom = logLines.length;
      const res = await call(base, c.method ?? "GET", c.path, headers, c.body);
      // Metrics and the log line are written when the answer is finished, a moment after it is read.
      await new Promise((r) => setTimeout(r, 20));
      const after = samples(await ctx.metrics.registry.metrics());
      const delta: Record<string, number> = {};
      for (const [k, v] of after) if (v !== (metricsBefore.get(k) ?? 0)) delta[k] = v - (metricsBefore.get(k) ?? 0);
      const logs = logLines.slice(logFrom).map((line) => {
        const { msg, method, url, status, level, reason, authFailure } = JSON.parse(line) as Record<string, unknown>;
        return { msg, method, url, status, level, reason, authFailure };
      });
      const { date, ...rest } = res.headers;
      expect(date).toBeDefined();
      return { answer: { status: res.status, headers: rest, body: res.body.toString("latin1") }, delta, touches: touch.mock.calls.map((x) => x[0]), logs, fast: fastReadsAnswered() - fastBefore };
    };
    for (const c of cases()) {
      // The first request fills the cache rows, verified tokens and rendered answers kept in memory.
      await one(framework.url, c);
      const viaFramework = await one(framework.url, c);
      const viaFast = await one(l.url, c);
      expect(viaFramework.answer.status, c.name).toBe(c.status);
      expect(viaFast.answer, c.name).toEqual(viaFramework.answer);
      expect(viaFast.delta, c.name).toEqual(viaFramework.delta);
      expect(viaFast.touches, c.name).toEqual(viaFramework.touches);
      expect(viaFast.logs, c.name).toEqual(viaFramework.logs);
      expect(viaFramework.fast, c.name).toBe(0);
      expect(viaFast.fast, c.name).toBe(c.fast ? 1 : 0);
    }
  });
});
