/**
 * narinfo answers kept in memory (src/narinfo-cache.ts): the cache is really used, yet a path
 * pushed, deleted, re-keyed or collected through the same process is seen by the very next
 * request; what another process changes shows within the TTL; cached hits still count as access
 * and in the metrics.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { rawRequest } from "./support/raw-http.ts";
import { createNarInfoCache } from "../src/narinfo-cache.ts";
import { openDb } from "../src/db/connect.ts";
import { startGcLoop } from "../src/gc/loop.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex } from "../src/nix/hash.ts";
import type { AppContext } from "../src/context.ts";

describe("the narinfo cache on its own", () => {
  const hit = (text: string) => ({ body: Buffer.from(text), objectId: 1, keypair: "k", keyVersion: 1 });

  it("keeps an answer for the TTL, then asks for a lookup again", () => {
    let now = 1000;
    const c = createNarInfoCache({ ttlMs: 1000, now: () => now });
    c.set(c.ticket(), 1, "a", hit("A"));
    c.set(c.ticket(), 1, "b", null);
    expect(c.get(1, "a")).toMatchObject({ body: Buffer.from("A") });
    expect(c.get(1, "b")).toBeNull();
    expect(c.get(2, "a")).toBeUndefined();
    now += 999;
    expect(c.get(1, "a")).toMatchObject({ body: Buffer.from("A") });
    now += 1;
    expect(c.get(1, "a")).toBeUndefined();
    expect(c.get(1, "b")).toBeUndefined();
  });

  it("does not store what a lookup read before an invalidation", () => {
    const c = createNarInfoCache();
    const ticket = c.ticket();
    c.invalidate(1, "other");
    c.set(ticket, 1, "a", null);
    expect(c.get(1, "a")).toBeUndefined();
    const later = c.ticket();
    c.clear();
    c.set(later, 1, "a", null);
    expect(c.get(1, "a")).toBeUndefined();
    c.set(c.ticket(), 1, "a", null);
    expect(c.get(1, "a")).toBeNull();
    c.invalidate(1, "a");
    expect(c.get(1, "a")).toBeUndefined();
  });

  it("holds at most maxEntries, dropping the oldest; TTL 0 keeps nothing", () => {
    const c = createNarInfoCache({ maxEntries: 2 });
    for (const h of ["a", "b", "c"]) c.set(c.ticket(), 1, h, null);
    expect([c.get(1, "a"), c.get(1, "b"), c.get(1, "c")]).toEqual([undefined, null, null]);
    const off = createNarInfoCache({ ttlMs: 0 });
    off.set(off.ticket(), 1, "a", null);
    expect(off.get(1, "a")).toBeUndefined();
  });
});

interface Fixture {
  hash: string;
  text: string;
  narName: string;
  nar: Buffer;
  storePath: string;
  narHashHex: string;
  narSize: number;
}

async function fixture(hash: string): Promise<Fixture> {
  const dir = join(FIXTURES, "caches", "none");
  const text = await readFile(join(dir, `${hash}.narinfo`), "utf8");
  const info = parseNarInfo(text);
  return { hash, text, narName: info.url.slice("nar/".length), nar: await readFile(join(dir, info.url)), storePath: info.storePath, narHashHex: formatHex(info.narHash), narSize: info.narSize };
}

/** Prometheus text → value of one sample (summed over series that match the labels). */
function metric(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

describe.each(BACKENDS)("narinfo answers kept in memory on %s", (backend) => {
  if (backend === "postgres-s3" && !postgresAvailable("the narinfo cache on PostgreSQL + S3")) return;
  let l: Larder;
  let token: string;
  // Fixtures without references, so each can be pushed on its own.
  let added: Fixture;
  let empty: Fixture;
  let dep: Fixture;

  beforeAll(async () => {
    // Long enough that only an invalidation, never the TTL, can explain a fresh answer.
    l = await startLarder(backend, { narInfoTtlMs: 60_000 });
    token = await l.token({ pull: ["*"], push: ["*"], delete: ["*"], configureCache: ["*"], configureCacheRetention: ["*"] });
    [added, empty, dep] = await Promise.all([fixture("8prr02r3rvr10vchn6d5n2x7ksy1ld5x"), fixture("a3phgncn84kxx9h74fjk60x2bq3v8bs0"), fixture("kkghh5yr1q7icgffzyp7is78kf9hfk4k")]);
  });
  afterAll(async () => {
    await l?.stop();
  });

  const auth = () => ({ authorization: `Bearer ${token}` });
  const get = async (cache: string, f: Fixture) => {
    const res = await fetch(`${l.url}/${cache}/${f.hash}.narinfo`, { headers: auth() });
    return { status: res.status, text: await res.text() };
  };
  const uploadPath = async (cache: string, f: Fixture) => {
    const info = { cache, store_path_hash: f.hash, store_path: f.storePath, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: f.narHashHex, nar_size: f.narSize };
    const res = await fetch(`${l.url}/_api/v1/upload-path`, { method: "PUT", headers: { ...auth(), "x-attic-nar-info": JSON.stringify(info) }, body: f.nar });
    expect(res.status, await res.text()).toBe(200);
  };
  const nixPush = async (cache: string, f: Fixture) => {
    const nar = await fetch(`${l.url}/${cache}/nar/${f.narName}`, { method: "PUT", headers: auth(), body: f.nar });
    expect(nar.status, await nar.text()).toBe(200);
    const info = await fetch(`${l.url}/${cache}/${f.hash}.narinfo`, { method: "PUT", headers: { ...auth(), "content-type": "text/x-nix-narinfo" }, body: f.text });
    expect(info.status, await info.text()).toBe(200);
  };
  const objectId = async (cache: string, f: Fixture) =>
    (await l.server.ctx.db.kysely.selectFrom("object").innerJoin("cache", "cache.id", "object.cache_id").select("object.id").where("cache.name", "=", cache).where("store_path_hash", "=", f.hash).executeTakeFirstOrThrow()).id;

  it("is used: a row deleted behind the server's back (another connection) is still served", async () => {
    await createTestCache(l, "used");
    await uploadPath("used", added);
    expect((await get("used", added)).status).toBe(200);
    const other = await openDb(l.config.databaseUrl);
    try {
      await other.kysely.deleteFrom("object").where("id", "=", await objectId("used", added)).execute();
    } finally {
      await other.close();
    }
    expect((await get("used", added)).status).toBe(200);
    l.server.ctx.narInfos.clear();
    expect((await get("used", added)).status).toBe(404);
  });

  it("serves a path pushed through this process at once, after a cached miss (upload-path and Nix's PUTs)", async () => {
    await createTestCache(l, "pushed");
    for (const [f, push] of [[added, uploadPath], [empty, nixPush]] as const) {
      expect((await get("pushed", f)).status).toBe(404);
      expect((await get("pushed", f)).status).toBe(404);
      await push("pushed", f);
      const after = await get("pushed", f);
      expect(after.status, `${f.storePath} right after its push`).toBe(200);
      expect(after.text).toContain(`StorePath: ${f.storePath}\n`);
    }
  });

  it("stops serving a deleted path at once", async () => {
    await createTestCache(l, "deleted");
    await uploadPath("deleted", dep);
    expect((await get("deleted", dep)).status).toBe(200);
    expect((await get("deleted", dep)).status).toBe(200);
    const res = await fetch(`${l.url}/_api/v1/cache/deleted/path/${dep.hash}`, { method: "DELETE", headers: auth() });
    expect(res.status, await res.text()).toBe(200);
    expect((await get("deleted", dep)).status).toBe(404);
  });

  it("signs a path when it is pushed (upload-path and Nix's PUTs), so no read has to, and serves that signature", async () => {
    await createTestCache(l, "signed-at-push");
    const signed = vi.spyOn(l.server.ctx.accessTracker, "signed");
    try {
      for (const [f, push] of [[added, uploadPath], [empty, nixPush]] as const) {
        await push("signed-at-push", f);
        const id = await objectId("signed-at-push", f);
        const row = await l.server.ctx.db.kysely.selectFrom("object").select(["signature", "signature_key_version"]).where("id", "=", id).executeTakeFirstOrThrow();
        const cache = await l.server.ctx.db.kysely.selectFrom("cache").select("key_version").where("name", "=", "signed-at-push").executeTakeFirstOrThrow();
        expect(row.signature, f.storePath).toMatch(/^signed-at-push:[A-Za-z0-9+/]{86}==$/);
        expect(row.signature_key_version).toBe(cache.key_version);
        l.server.ctx.narInfos.clear();
        const first = await get("signed-at-push", f);
        expect(/^Sig: (.*)$/m.exec(first.text)?.[1]).toBe(row.signature);
      }
      expect(signed).not.toHaveBeenCalled();
    } finally {
      signed.mockRestore();
    }
  });

  it("signs a path stored without a signature (written before pushes signed) at its first read, keeps it, and serves it after", async () => {
    await createTestCache(l, "signed-once");
    await uploadPath("signed-once", added);
    const id = await objectId("signed-once", added);
    await l.server.ctx.db.kysely.updateTable("object").set({ signature: null, signature_key_version: null }).where("id", "=", id).execute();
    l.server.ctx.narInfos.clear();
    const first = await get("signed-once", added);
    const sig = /^Sig: (signed-once:.*)$/m.exec(first.text)?.[1];
    expect(sig).toBeDefined();
    await l.server.ctx.accessTracker.flush();
    const row = await l.server.ctx.db.kysely.selectFrom("object").select(["signature", "signature_key_version"]).where("id", "=", id).executeTakeFirstOrThrow();
    expect(row.signature).toBe(sig);
    // Served from the stored signature once the rendered answer is gone.
    l.server.ctx.narInfos.clear();
    expect((await get("signed-once", added)).text).toBe(first.text);
  });

  it("signs with a regenerated key at once", async () => {
    await createTestCache(l, "rekeyed");
    await uploadPath("rekeyed", added);
    const before = await get("rekeyed", added);
    expect(before.text).toMatch(/^Sig: rekeyed:/m);
    const res = await fetch(`${l.url}/_api/v1/cache-config/rekeyed`, { method: "PATCH", headers: { ...auth(), "content-type": "application/json" }, body: JSON.stringify({ keypair: "Generate" }) });
    expect(res.status, await res.text()).toBe(200);
    const after = await get("rekeyed", added);
    expect(after.status).toBe(200);
    const sig = (t: string) => /^Sig: (rekeyed:.*)$/m.exec(t)?.[1];
    expect(sig(after.text)).toBeDefined();
    expect(sig(after.text)).not.toBe(sig(before.text));
  });

  it("stops serving what the server's own periodic GC collected at once", async () => {
    await createTestCache(l, "collected");
    const patch = await fetch(`${l.url}/_api/v1/cache-config/collected`, { method: "PATCH", headers: { ...auth(), "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 60 } }) });
    expect(patch.status).toBe(200);
    await uploadPath("collected", empty);
    expect((await get("collected", empty)).status).toBe(200);
    expect((await get("collected", empty)).status).toBe(200);
    // Aged after the answer was cached (and after its hits were recorded, which GC would count
    // as use), so only the GC's own invalidation can make the next answer a miss.
    await l.server.ctx.accessTracker.flush();
    const id = await objectId("collected", empty);
    await l.server.ctx.db.kysely.updateTable("object").set({ created_at: 0, last_accessed_at: 0 }).where("id", "=", id).execute();
    // What a monolithic server runs: the periodic loop over the server's own context.
    const ctx: AppContext = { ...l.server.ctx, log: pino({ level: "silent" }), config: { ...l.server.ctx.config, gc: { ...l.server.ctx.config.gc, intervalSeconds: 3600 } } };
    const loop = startGcLoop(ctx);
    const stillThere = async () => (await l.server.ctx.db.kysely.selectFrom("object").select("id").where("id", "=", id).execute()).length > 0;
    for (let i = 0; i < 200 && (await stillThere()); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    await loop.stop();
    expect(await stillThere()).toBe(false);
    expect((await get("collected", empty)).status).toBe(404);
  });

  it("records access for cached hits and counts them in the metrics as before", async () => {
    await createTestCache(l, "counted");
    await uploadPath("counted", added);
    const id = await objectId("counted", added);
    const touched: number[] = [];
    const tracker = l.server.ctx.accessTracker;
    const touch = tracker.touch.bind(tracker);
    tracker.touch = (objectIdTouched) => {
      touched.push(objectIdTouched);
      touch(objectIdTouched);
    };
    try {
      const before = await (await fetch(`${l.url}/metrics`)).text();
      for (let i = 0; i < 5; i++) expect((await get("counted", added)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await get("counted", empty)).status).toBe(404);
      const head = await fetch(`${l.url}/counted/${added.hash}.narinfo`, { method: "HEAD", headers: auth() });
      expect(head.status).toBe(200);
      const after = await (await fetch(`${l.url}/metrics`)).text();
      expect(touched).toEqual([id, id, id, id, id, id]);
      const delta = (name: string, labels: Record<string, string>) => metric(after, name, labels) - metric(before, name, labels);
      expect(delta("larder_narinfo_requests_total", { result: "hit" })).toBe(6);
      expect(delta("larder_narinfo_requests_total", { result: "miss" })).toBe(3);
      expect(delta("larder_http_requests_total", { route: "/:cache/:file", method: "GET", status: "200" })).toBe(5);
      expect(delta("larder_http_requests_total", { route: "/:cache/:file", method: "GET", status: "404" })).toBe(3);
      expect(delta("larder_http_requests_total", { route: "/:cache/:file", method: "HEAD", status: "200" })).toBe(1);
      expect(delta("larder_http_request_duration_seconds_count", { route: "/:cache/:file", method: "GET" })).toBe(8);
      expect(delta("larder_http_request_duration_seconds_bucket", { route: "/:cache/:file", method: "GET", le: "+Inf" })).toBe(8);
    } finally {
      tracker.touch = touch;
    }
    // And the access time reaches the database.
    await tracker.flush();
    await l.server.ctx.db.kysely.updateTable("object").set({ last_accessed_at: 0 }).where("id", "=", id).execute();
    expect((await get("counted", added)).status).toBe(200);
    expect((await get("counted", added)).status).toBe(200);
    await tracker.flush();
    const row = await l.server.ctx.db.kysely.selectFrom("object").select("last_accessed_at").where("id", "=", id).executeTakeFirstOrThrow();
    expect(row.last_accessed_at).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe.each(BACKENDS)("what another process changes, on %s", (backend) => {
  if (backend === "postgres-s3" && !postgresAvailable("the narinfo cache TTL on PostgreSQL + S3")) return;
  let l: Larder;
  beforeAll(async () => {
    l = await startLarder(backend, { narInfoTtlMs: 300 });
  });
  afterAll(async () => {
    await l?.stop();
  });

  it("shows within the TTL: a deletion by another connection, after a cached hit", async () => {
    await createTestCache(l, "elsewhere", { isPublic: true });
    const f = await fixture("fsk75lc3dqvfsjpllxpdcqw1c2bi0xw7");
    const token = await l.token({ push: ["elsewhere"] });
    const res = await fetch(`${l.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "x-attic-nar-info": JSON.stringify({ cache: "elsewhere", store_path_hash: f.hash, store_path: f.storePath, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: f.narHashHex, nar_size: f.narSize }) },
      body: f.nar,
    });
    expect(res.status, await res.text()).toBe(200);
    const url = `${l.url}/elsewhere/${f.hash}.narinfo`;
    expect((await fetch(url)).status).toBe(200);
    const other = await openDb(l.config.databaseUrl);
    try {
      await other.kysely.deleteFrom("object").where("store_path_hash", "=", f.hash).execute();
    } finally {
      await other.close();
    }
    const deleted = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - deleted < 5000) {
      status = (await fetch(url)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(404);
    expect(Date.now() - deleted).toBeLessThan(300 + 1000);
  });
});

describe("request metrics, recorded per route", () => {
  let l: Larder;
  beforeAll(async () => {
    l = await startLarder("sqlite-local");
  });
  afterAll(async () => {
    await l?.stop();
  });

  it("counts matched routes under their pattern, and unmatched URLs and refused hosts as unmatched", async () => {
    await createTestCache(l, "m", { isPublic: true });
    const before = await (await fetch(`${l.url}/metrics`)).text();
    expect((await fetch(`${l.url}/m/nix-cache-info`)).status).toBe(200);
    expect((await fetch(`${l.url}/no/such/route/here`)).status).toBe(404);
    expect((await fetch(`${l.url}/no/such/route/here`, { method: "POST" })).status).toBe(404);
    // An empty Host header: refused by the host check, on a matched and an unmatched URL.
    expect((await rawRequest(l.url, ["GET /m/nix-cache-info HTTP/1.1", "host: ", "connection: close"])).status).toBe(400);
    expect((await rawRequest(l.url, ["GET /no/such/route/here HTTP/1.1", "host: ", "connection: close"])).status).toBe(400);
    const after = await (await fetch(`${l.url}/metrics`)).text();
    const delta = (name: string, labels: Record<string, string>) => metric(after, name, labels) - metric(before, name, labels);
    expect(delta("larder_http_requests_total", { route: "/:cache/nix-cache-info", method: "GET", status: "200" })).toBe(1);
    expect(delta("larder_http_requests_total", { route: "/:cache/nix-cache-info", method: "GET", status: "400" })).toBe(1);
    expect(delta("larder_http_requests_total", { route: "unmatched", method: "GET", status: "404" })).toBe(1);
    expect(delta("larder_http_requests_total", { route: "unmatched", method: "POST", status: "404" })).toBe(1);
    expect(delta("larder_http_requests_total", { route: "unmatched", method: "GET", status: "400" })).toBe(1);
    expect(delta("larder_http_request_duration_seconds_count", { route: "unmatched" })).toBe(3);
    expect(delta("larder_http_request_duration_seconds_count", { route: "/:cache/nix-cache-info" })).toBe(2);
    // The scrape before this one was counted once, as the route it is.
    expect(delta("larder_http_requests_total", { route: "/metrics", method: "GET", status: "200" })).toBe(1);
  });
});
