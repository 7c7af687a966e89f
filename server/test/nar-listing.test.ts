/**
 * `<hash>.ls` listings with the real Nix 2.8 client: what larderd serves equals the .ls Nix
 * writes itself (write-nar-listing), `nix store ls` works against the cache, NARs stored before
 * listings existed are listed on first request, and access follows the narinfo's rules.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { expireAllObjects, gcAYearOn } from "./support/gc.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");

describe.skipIf(!haveNix).each(BACKENDS)("NAR listings on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("listings on PostgreSQL + S3");
  let larder: Larder;
  let nix: NixEnv;
  let token: string;
  let top: string;
  let all: string[];
  let nixLs: string;

  const hashOf = (p: string) => p.slice("/nix/store/".length, "/nix/store/".length + 32);
  const getLs = (p: string, t: string | null = token) =>
    fetch(`${larder.url}/main/${hashOf(p)}.ls`, { headers: t !== null ? { authorization: `Bearer ${t}` } : {} });
  // Nix's remote accessor reports where files sit in the NAR; a local store has no NAR to point into.
  const withoutOffsets = (json: string) => JSON.parse(json, (k, v: unknown) => (k === "narOffset" ? undefined : v)) as unknown;

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend);
    nix = await createNixEnv();
    await createTestCache(larder, "main");
    token = await larder.token({ pull: ["main"], push: ["main"] }, "ci");
    top = await nix.buildClosure(`ls-${randomBytes(4).toString("hex")}`);
    all = (await nix.pathInfo(nix.src, top)).map((p) => p.path);
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/main?compression=xz`, top]);
    // The oracle: the listings Nix writes into a file:// cache of its own.
    nixLs = join(nix.dir.path, "nix-ls");
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `file://${nixLs}?compression=none&write-nar-listing=true`, top]);
  });
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("serves, for every pushed path, the .ls Nix itself writes, computed at ingest", async () => {
    const rows = await larder.server.ctx.db.kysely.selectFrom("nar_listing").select("nar_id").execute();
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const p of all) {
      const res = await getLs(p);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(join(nixLs, `${hashOf(p)}.ls`)))).toBe(true);
    }
  });

  it.skipIf(skip)("nix store ls works against the cache", async () => {
    const fromCache = await nix.nix(["nix", "store", "ls", "--store", `${larder.url}/main`, "-R", "--json", top]);
    const fromStore = await nix.nix(["nix", "store", "ls", "--store", nix.src, "-R", "--json", top]);
    expect(fromCache).toContain('"narOffset"');
    expect(withoutOffsets(fromCache)).toEqual(withoutOffsets(fromStore));
    expect(await nix.nix(["nix", "store", "ls", "--store", `${larder.url}/main`, `${top}/mid`])).toContain("mid");
  });

  it.skipIf(skip)("lists a NAR stored before listings existed on its first request, once", async () => {
    const db = larder.server.ctx.db.kysely;
    await db.deleteFrom("nar_listing").execute();
    const res = await getLs(top);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(join(nixLs, `${hashOf(top)}.ls`)))).toBe(true);
    expect((await db.selectFrom("nar_listing").select("nar_id").execute()).length).toBe(1);
  });

  it.skipIf(skip)("follows the narinfo's access rules and validates the name", async () => {
    expect((await getLs(top, null)).status).toBe(401);
    const other = await larder.token({ pull: ["other"] }, "other");
    expect((await getLs(top, other)).status).toBe(401);
    await createTestCache(larder, "empty");
    const res = await fetch(`${larder.url}/empty/${hashOf(top)}.ls`, { headers: { authorization: `Bearer ${larder.rootToken}` } });
    expect(res.status).toBe(404);
    const bad = await fetch(`${larder.url}/main/not-a-hash.ls`, { headers: { authorization: `Bearer ${token}` } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/store path hash/);
  });

  it.skipIf(skip)("GC removes a listing with its NAR, and the path's .ls with its narinfo", async () => {
    const db = larder.server.ctx.db.kysely;
    await expireAllObjects(larder);
    await gcAYearOn(larder);
    expect(await db.selectFrom("nar").select("id").execute()).toHaveLength(0);
    expect(await db.selectFrom("nar_listing").select("nar_id").execute()).toHaveLength(0);
    expect((await getLs(top)).status).toBe(404);
  });
});
