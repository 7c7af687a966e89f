/**
 * Garbage collection never breaks a closure: randomized caches with closures, pins and mixed
 * ages; after each run the real Nix client substitutes everything still served, and everything
 * nothing keeps is gone, storage objects included.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { buildDag, closureOf, rng, type Dag } from "./support/dag.ts";
import { requireTool } from "./support/requirements.ts";
import { collectGarbage } from "../src/gc/run.ts";
import { larderCli } from "./support/client.ts";

const haveNix = requireTool("nix", "GC tests substitute the surviving closures with the real Nix client");
const HOUR = 3600_000;

async function storageKeys(l: Larder): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const o of l.server.ctx.storage.list("nar/")) keys.add(o.key);
  return keys;
}

async function servedPaths(l: Larder, cache: string): Promise<string[]> {
  const rows = await l.server.ctx.db.kysely.selectFrom("object").innerJoin("cache", "cache.id", "object.cache_id").select("object.store_path").where("cache.name", "=", cache).execute();
  return rows.map((r) => r.store_path).sort();
}

describe.skipIf(!haveNix).each(BACKENDS)("garbage collection on %s", (backend) => {
  if (backend === "postgres-s3" && !postgresAvailable("GC on PostgreSQL + S3")) return;
  let l: Larder;
  let nix: NixEnv;

  beforeAll(async () => {
    l = await startLarder(backend);
    nix = await createNixEnv();
  });
  afterAll(async () => {
    await l?.stop();
    await nix?.cleanup();
  });

  const gc = (now: number) => collectGarbage({ db: l.server.ctx.db, pool: l.server.ctx.pool, gc: l.config.gc, log: pino({ level: "silent" }) }, now);

  async function setAge(cache: string, paths: string[], ageMs: number, now: number): Promise<void> {
    // Hits recorded before this point must not land after it and undo the ageing.
    await l.server.ctx.accessTracker.flush();
    if (paths.length === 0) return;
    const ids = await l.server.ctx.db.kysely.selectFrom("object").innerJoin("cache", "cache.id", "object.cache_id").select("object.id").where("cache.name", "=", cache).where("object.store_path", "in", paths).execute();
    if (ids.length === 0) return;
    await l.server.ctx.db.kysely.updateTable("object").set({ created_at: now - ageMs, last_accessed_at: now - ageMs }).where("id", "in", ids.map((r) => r.id)).execute();
  }

  async function pin(cache: string, token: string, name: string, path: string): Promise<void> {
    const res = await fetch(`${l.url}/_api/v1/pins/${cache}/${name}`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ store_path: path }) });
    expect(res.status, await res.text()).toBe(200);
  }

  it("keeps exactly the closures of fresh and pinned paths, over randomized rounds, and Nix can install all of them", async () => {
    const seed = Number(process.env.LARDER_GC_SEED ?? Date.now() % 1_000_000);
    const random = rng(seed);
    const caches = ["gc-a", "gc-b"];
    const retentionS = 24 * 3600;
    const keys: Record<string, string> = {};
    for (const c of caches) {
      keys[c] = await createTestCache(l, c);
      const res = await fetch(`${l.url}/_api/v1/cache-config/${c}`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: retentionS } }) });
      expect(res.status).toBe(200);
    }
    const token = await l.token({ pull: ["gc-*"], push: ["gc-*"] });
    await nix.setToken(l.url, token);
    const dag: Dag = await buildDag(nix, `r${seed}-${randomBytes(3).toString("hex")}`, 40, random);
    // Both caches get overlapping halves of the DAG (closed under references, as Nix pushes them).
    const pushed: Record<string, Set<number>> = {};
    for (const c of caches) {
      const roots = dag.paths.map((_, i) => i).filter(() => random() < 0.5);
      pushed[c] = closureOf(dag.edges, roots);
      const paths = [...(pushed[c] as Set<number>)].map((i) => dag.paths[i] as string);
      await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/${c}?compression=zstd`, ...paths]);
    }

    let now = Date.now();
    for (let round = 0; round < 3; round++) {
      now += 2 * retentionS * 1000; // every round starts with everything past retention…
      const expected: Record<string, Set<number>> = {};
      await l.server.ctx.db.kysely.deleteFrom("pin").execute();
      for (const c of caches) {
        const present = [...(pushed[c] as Set<number>)];
        await setAge(c, present.map((i) => dag.paths[i] as string), 2 * retentionS * 1000, now);
        // …then some paths are fresh again and some are pinned.
        const fresh = present.filter(() => random() < 0.15);
        await setAge(c, fresh.map((i) => dag.paths[i] as string), 60_000, now);
        const pinned = present.filter(() => random() < 0.08);
        for (const [k, i] of pinned.entries()) await pin(c, token, `p${k}`, dag.paths[i] as string);
        expected[c] = closureOf(dag.edges, [...fresh, ...pinned]);
      }
      // NAR rows and staged uploads are past the grace period too.
      await l.server.ctx.db.kysely.updateTable("nar").set({ created_at: now - 10 * HOUR }).execute();
      const stats = await gc(now);

      for (const c of caches) {
        const want = [...(expected[c] as Set<number>)].map((i) => dag.paths[i] as string).sort();
        expect(await servedPaths(l, c), `seed ${seed}, round ${round}, cache ${c}`).toEqual(want);
        pushed[c] = expected[c] as Set<number>;
        if (want.length > 0) {
          const dst = nix.freshStore(`gc-${c}-${round}`);
          await nix.nix(["nix", "copy", "--from", `${l.url}/${c}`, "--to", dst, "--option", "trusted-public-keys", keys[c] as string, ...want]);
          expect((await nix.pathInfo(dst, want[0] as string)).length).toBeGreaterThan(0);
        }
      }
      // Storage holds exactly the NARs of what is still served anywhere.
      const used = await l.server.ctx.db.kysely.selectFrom("nar").select("storage_key").execute();
      expect(await storageKeys(l)).toEqual(new Set(used.map((r) => r.storage_key)));
      const servedNars = await l.server.ctx.db.kysely.selectFrom("object").select("nar_id").distinct().execute();
      expect(used.length).toBe(servedNars.length);
      expect(stats.storage_objects).toBe(stats.nars);
    }
  });

  it("moving a pin releases the old closure and keeps the new one", async () => {
    await createTestCache(l, "pins");
    await fetch(`${l.url}/_api/v1/cache-config/pins`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 60 } }) });
    const token = await l.token({ pull: ["pins"], push: ["pins"] });
    await nix.setToken(l.url, token);
    const one = await nix.buildClosure(`pin1-${randomBytes(3).toString("hex")}`);
    const two = await nix.buildClosure(`pin2-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/pins?compression=zstd`, one]);
    await pin("pins", token, "main", one);
    const now = Date.now() + 10 * HOUR;
    await gc(now);
    expect((await servedPaths(l, "pins")).length).toBe(3);
    expect(await servedPaths(l, "pins")).toContain(one);
    // CI pushes the next build and moves "main" to it.
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/pins?compression=zstd`, two]);
    await pin("pins", token, "main", two);
    await gc(now + 1);
    const left = await servedPaths(l, "pins");
    expect(left).toContain(two);
    expect(left).not.toContain(one);
    const list = (await (await fetch(`${l.url}/_api/v1/pins/pins`, { headers: { authorization: `Bearer ${token}` } })).json()) as { pins: { name: string; store_path: string }[] };
    expect(list.pins).toEqual([expect.objectContaining({ name: "main", store_path: two })]);
  });

  it("larder pin, pins and unpin drive the same pins from the command line", async () => {
    await createTestCache(l, "cli-pins");
    const token = await l.token({ pull: ["cli-pins"], push: ["cli-pins"] });
    const larder = larderCli(nix.env as Record<string, string>);
    expect((await larder(["login", "here", `${l.url}/`, token])).code).toBe(0);
    const top = await nix.buildClosure(`clipin-${randomBytes(3).toString("hex")}`);
    expect((await larder(["push", "cli-pins", top, "--store", nix.src])).code).toBe(0);
    const pinned = await larder(["pin", "cli-pins", "release", top]);
    expect(pinned.stdout, pinned.stderr).toContain(`pinned ${top} as "release"`);
    expect((await larder(["pins", "cli-pins"])).stdout).toMatch(new RegExp(`^release\t${top}\t`, "m"));
    // Past retention, the pinned closure stays.
    await fetch(`${l.url}/_api/v1/cache-config/cli-pins`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 60 } }) });
    await gc(Date.now() + 10 * HOUR);
    expect((await servedPaths(l, "cli-pins")).length).toBe(3);
    expect((await larder(["unpin", "cli-pins", "release"])).stdout).toContain('removed pin "release"');
    await gc(Date.now() + 10 * HOUR);
    expect(await servedPaths(l, "cli-pins")).toEqual([]);
    const missing = await larder(["unpin", "cli-pins", "release"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No pin "release"/);
  });

  it("counts narinfo and NAR hits as use: a path read recently outlives retention", async () => {
    const pub = await createTestCache(l, "hits");
    await fetch(`${l.url}/_api/v1/cache-config/hits`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 3600 } }) });
    const token = await l.token({ pull: ["hits"], push: ["hits"] });
    await nix.setToken(l.url, token);
    const read = await nix.buildClosure(`hit-${randomBytes(3).toString("hex")}`);
    const unread = await nix.buildClosure(`nohit-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/hits?compression=zstd`, read, unread]);
    const all = await servedPaths(l, "hits");
    await setAge("hits", all, 2 * HOUR, Date.now());
    // A client substitutes one closure: narinfo and NAR hits, recorded off the request path.
    await nix.nix(["nix", "copy", "--from", `${l.url}/hits`, "--to", nix.freshStore("reader"), "--option", "trusted-public-keys", pub, read]);
    await l.server.ctx.accessTracker.flush();
    await gc(Date.now());
    const left = await servedPaths(l, "hits");
    expect(left).toHaveLength(3);
    expect(left).toContain(read);
    expect(left).not.toContain(unread);
  });

  it("cleans up an upload abandoned before its narinfo, but only after the grace period", async () => {
    await createTestCache(l, "abandon");
    const token = await l.token({ push: ["abandon"], pull: ["abandon"] });
    const { readFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { FIXTURES } = await import("./fixtures/nix/fixtures.ts");
    const narName = "0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5.nar";
    const res = await fetch(`${l.url}/abandon/nar/${narName}`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body: await readFile(join(FIXTURES, "caches", "none", "nar", narName)) });
    expect(res.status).toBe(200);
    const staged = await l.server.ctx.db.kysely.selectFrom("staged_nar").innerJoin("nar", "nar.id", "staged_nar.nar_id").innerJoin("cache", "cache.id", "staged_nar.cache_id").select("nar.storage_key").where("cache.name", "=", "abandon").executeTakeFirstOrThrow();
    const grace = l.config.gc.graceSeconds * 1000;
    const within = await gc(Date.now() + grace - 60_000);
    expect(within.staged_expired).toBe(0);
    expect(await l.server.ctx.storage.head(staged.storage_key)).not.toBeNull();
    const after = await gc(Date.now() + grace + 60_000);
    expect(after.staged_expired).toBe(1);
    expect(await l.server.ctx.storage.head(staged.storage_key)).toBeNull();
    expect(await l.server.ctx.db.kysely.selectFrom("nar").select("id").where("storage_key", "=", staged.storage_key).execute()).toEqual([]);
  });

  it("is not blocked by a storage object that is already missing", async () => {
    await createTestCache(l, "missing");
    await fetch(`${l.url}/_api/v1/cache-config/missing`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 60 } }) });
    await nix.setToken(l.url, await l.token({ push: ["missing"], pull: ["missing"] }));
    const top = await nix.buildClosure(`missing-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/missing?compression=zstd`, top]);
    const rows = await l.server.ctx.db.kysely.selectFrom("nar").innerJoin("object", "object.nar_id", "nar.id").innerJoin("cache", "cache.id", "object.cache_id").select("nar.storage_key").where("cache.name", "=", "missing").execute();
    expect(rows).toHaveLength(3);
    // Someone removed one object behind larder's back.
    await l.server.ctx.storage.delete(rows[0]?.storage_key as string);
    const later = Date.now() + 10 * HOUR;
    await l.server.ctx.db.kysely.updateTable("nar").set({ created_at: 0 }).where("storage_key", "in", rows.map((r) => r.storage_key)).execute();
    const stats = await gc(later);
    expect(stats.objects).toBe(3);
    expect(stats.nars).toBe(3);
    expect(stats.storage_objects).toBe(2);
    expect(await l.server.ctx.db.kysely.selectFrom("storage_journal").selectAll().execute()).toEqual([]);
    for (const r of rows) expect(await l.server.ctx.storage.head(r.storage_key)).toBeNull();
  });

  it("loses nothing that is pushed while GC runs", async () => {
    await createTestCache(l, "busy");
    await fetch(`${l.url}/_api/v1/cache-config/busy`, { method: "PATCH", headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" }, body: JSON.stringify({ retention_period: { Period: 3600 } }) });
    const key = (await (await fetch(`${l.url}/_api/v1/cache-config/busy`, { headers: { authorization: `Bearer ${l.rootToken}` } })).json()) as { public_key: string };
    const token = await l.token({ pull: ["busy"], push: ["busy"] });
    await nix.setToken(l.url, token);
    // Old paths for GC to chew on while the push runs.
    const old = await buildDag(nix, `old-${randomBytes(3).toString("hex")}`, 40, rng(7));
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/busy?compression=zstd`, ...old.paths]);
    await setAge("busy", old.paths, 2 * HOUR, Date.now());
    await l.server.ctx.db.kysely.updateTable("nar").set({ created_at: 0 }).execute();
    const fresh = await buildDag(nix, `new-${randomBytes(3).toString("hex")}`, 40, rng(8));
    let stop = false;
    let runs = 0;
    let deleted = 0;
    const collector = (async () => {
      while (!stop) {
        deleted += (await gc(Date.now())).objects;
        runs++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/busy?compression=zstd`, ...fresh.paths]);
    } finally {
      stop = true;
      await collector;
    }
    expect(runs).toBeGreaterThan(1);
    expect(deleted).toBe(old.paths.length);
    const dst = nix.freshStore("busy");
    await nix.nix(["nix", "copy", "--from", `${l.url}/busy`, "--to", dst, "--option", "trusted-public-keys", key.public_key, ...fresh.paths]);
    for (const p of fresh.paths) expect((await nix.pathInfo(dst, p)).length).toBeGreaterThan(0);
    expect((await servedPaths(l, "busy")).length).toBe(fresh.paths.length);
  });
});
