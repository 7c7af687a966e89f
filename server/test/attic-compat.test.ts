/**
 * attic's client, replayed byte for byte: the requests `attic cache create|configure|info`,
 * `attic push` (get-missing-paths, then upload-path in header and preamble mode, chunked,
 * lowercase `bearer`) would write, sent over a raw socket, and attic's response shapes and error
 * bodies checked. The JSON and framing are from attic's sources (shared/research/attic.md §1.3, §1.4, §6).
 */
import { readFile, readdir } from "node:fs/promises";
import { zstdDecompressSync } from "node:zlib";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLarder, type Larder } from "./support/larder.ts";
import { chunked, pieces, rawRequest, type RawResponse } from "./support/raw-http.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex, formatNix32 } from "../src/nix/hash.ts";

const UA = "user-agent: Attic/attic-client (unknown)";

interface Fixture {
  hash: string;
  storePath: string;
  references: string[];
  narHashHex: string;
  narHashNix32: string;
  narSize: number;
  nar: Buffer;
}

async function fixture(hash: string): Promise<Fixture> {
  const dir = join(FIXTURES, "caches", "none");
  const info = parseNarInfo(await readFile(join(dir, `${hash}.narinfo`), "utf8"));
  return {
    hash,
    storePath: info.storePath,
    references: info.references,
    narHashHex: formatHex(info.narHash),
    narHashNix32: formatNix32(info.narHash),
    narSize: info.narSize,
    nar: await readFile(join(dir, info.url)),
  };
}

/** attic's UploadPathNarInfo, as serde_json writes it (field order of the struct, compact). */
function uploadInfo(cache: string, f: Fixture, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cache,
    store_path_hash: f.hash,
    store_path: f.storePath,
    references: f.references,
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: f.narHashHex,
    nar_size: f.narSize,
    ...over,
  });
}

async function expectAtticError(r: RawResponse, code: number, error: string, message?: RegExp): Promise<void> {
  expect(r.status, r.text).toBe(code);
  expect(r.headers["content-type"]).toMatch(/^application\/json/);
  const body = r.json<{ code: number; error: string; message: string }>();
  expect(Object.keys(body).sort()).toEqual(["code", "error", "message"]);
  expect(body.code).toBe(code);
  expect(body.error).toBe(error);
  if (message) expect(body.message).toMatch(message);
}

describe("attic's client, byte for byte", () => {
  let l: Larder;
  let host: string;
  let token: string;
  let pullOnly: string;
  let tree: Fixture;
  let empty: Fixture;
  let top: Fixture;

  const json = (method: string, path: string, body: unknown, auth = token) => {
    if (body === undefined) return rawRequest(l.url, [`${method} ${path} HTTP/1.1`, UA, `authorization: bearer ${auth}`, "accept: */*", `host: ${host}`]);
    const text = Buffer.from(JSON.stringify(body));
    return rawRequest(l.url, [
      `${method} ${path} HTTP/1.1`,
      UA,
      `authorization: bearer ${auth}`,
      "content-type: application/json",
      "accept: */*",
      `host: ${host}`,
      `content-length: ${text.length}`,
    ], [text]);
  };
  const get = (path: string, auth = token) =>
    rawRequest(l.url, [`GET ${path} HTTP/1.1`, UA, ...(auth ? [`authorization: bearer ${auth}`] : []), "accept: */*", `host: ${host}`]);
  const upload = (headers: string[], body: Buffer[], auth = token) =>
    rawRequest(l.url, [
      "PUT /_api/v1/upload-path HTTP/1.1",
      ...headers,
      UA,
      `authorization: bearer ${auth}`,
      "accept: */*",
      `host: ${host}`,
      "transfer-encoding: chunked",
    ], pieces(chunked(body), 1000));

  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    host = new URL(l.url).host;
    token = await l.token({ pull: ["team-*"], push: ["team-*"], createCache: ["team-*"], configureCache: ["team-*"], configureCacheRetention: ["team-*"], destroyCache: ["team-*"] }, "alice");
    pullOnly = await l.token({ pull: ["team-*"] }, "reader");
    tree = await fixture("1xf6ig6iwgd3gh8v8p8ksg9igdkxh4x9");
    empty = await fixture("a3phgncn84kxx9h74fjk60x2bq3v8bs0");
    top = await fixture("zzm5y1sj34xlszrjf9vhvfwhrvsd87rn");
  });
  afterAll(() => l?.stop());

  it("attic cache create / info / configure / destroy", async () => {
    const create = { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: ["cache.nixos.org-1"] };
    const created = await json("POST", "/_api/v1/cache-config/team-a", create);
    expect(created.status, created.text).toBe(200);
    await expectAtticError(await json("POST", "/_api/v1/cache-config/team-a", create), 400, "CacheAlreadyExists");

    const info = await get("/_api/v1/cache-config/team-a");
    expect(info.status).toBe(200);
    const cfg = info.json<Record<string, unknown>>();
    expect(Object.keys(cfg).sort()).toEqual(
      ["api_endpoint", "bucket_layout", "is_public", "nix_push_endpoint", "priority", "public_key", "retention_period", "store_dir", "substituter_endpoint", "upload_zstd_level", "upstream_cache_key_names"],
    );
    expect(cfg.api_endpoint).toBe(`http://${host}/`);
    expect(cfg.substituter_endpoint).toBe(`http://${host}/team-a`);
    // larder's addition (serde ignores fields it does not know, so attic's client is unaffected).
    expect(cfg.nix_push_endpoint).toBe(`http://${host}/_push/team-a`);
    expect(cfg.public_key).toMatch(/^team-a:[A-Za-z0-9+/]{43}=$/);
    expect(cfg.retention_period).toBe("Global");
    expect((await get("/team-a/attic-cache-info")).json()).toEqual(cfg);

    // attic cache configure always sends retention_period; "Global" unless --retention-period.
    const patched = await json("PATCH", "/_api/v1/cache-config/team-a", { is_public: true, priority: 30, retention_period: { Period: 86400 } });
    expect(patched.status, patched.text).toBe(200);
    const after = (await get("/_api/v1/cache-config/team-a")).json<Record<string, unknown>>();
    expect(after).toMatchObject({ is_public: true, priority: 30, retention_period: { Period: 86400 } });
    expect((await json("PATCH", "/_api/v1/cache-config/team-a", { keypair: "Generate", retention_period: "Global" })).status).toBe(200);
    const rekeyed = (await get("/_api/v1/cache-config/team-a")).json<Record<string, unknown>>();
    expect(rekeyed.public_key).not.toBe(cfg.public_key);
    expect(rekeyed.retention_period).toBe("Global");

    await expectAtticError(await json("POST", "/_api/v1/cache-config/team-b", create, pullOnly), 403, "AccessError");
    await expectAtticError(await json("POST", "/_api/v1/cache-config/other", create), 401, "Unauthorized");
    await json("POST", "/_api/v1/cache-config/team-gone", create);
    expect((await json("DELETE", "/_api/v1/cache-config/team-gone", undefined)).status).toBe(200);
    await expectAtticError(await get("/_api/v1/cache-config/team-gone"), 404, "NoSuchCache");
  });

  it("attic push: get-missing-paths, then upload-path in header mode, chunked", async () => {
    await json("POST", "/_api/v1/cache-config/team-push", { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
    const missing = await json("POST", "/_api/v1/get-missing-paths", { cache: "team-push", store_path_hashes: [tree.hash, empty.hash, tree.hash] });
    expect(missing.status, missing.text).toBe(200);
    expect(missing.json()).toEqual({ missing_paths: [tree.hash, empty.hash] });

    const r = await upload([`x-attic-nar-info: ${uploadInfo("team-push", empty)}`], pieces(empty.nar, 37));
    expect(r.status, r.text).toBe(200);
    const result = r.json<{ kind: string; file_size: number; frac_deduplicated: number }>();
    expect(Object.keys(result).sort()).toEqual(["file_size", "frac_deduplicated", "kind"]);
    expect(result.kind).toBe("Uploaded");
    expect(result.file_size).toBeGreaterThan(0);
    expect(result.frac_deduplicated).toBe(0);

    expect((await json("POST", "/_api/v1/get-missing-paths", { cache: "team-push", store_path_hashes: [tree.hash, empty.hash] })).json()).toEqual({ missing_paths: [tree.hash] });
    // Nix (HTTP Basic, from netrc) now sees the path, signed by the cache.
    const narinfo = await fetch(`${l.url}/team-push/${empty.hash}.narinfo`, { headers: { authorization: `Basic ${Buffer.from(`x:${token}`).toString("base64")}` } });
    expect(narinfo.status).toBe(200);
    const text = await narinfo.text();
    expect(text).toContain(`StorePath: ${empty.storePath}\n`);
    expect(text).toMatch(/^Sig: team-push:/m);
    const row = await l.server.ctx.db.kysely.selectFrom("object").select(["created_by"]).where("store_path_hash", "=", empty.hash).executeTakeFirstOrThrow();
    expect(row.created_by).toBe("alice");
  });

  it("attic push: preamble mode (nix32 nar_hash, references, deriver, sigs), then a dedup in another cache", async () => {
    const info = uploadInfo("team-push", tree, {
      nar_hash: tree.narHashNix32,
      deriver: "jar1xcwarfr68mzzn1hg3j0z7rc4df0a-fx-tree_1.0+x=y?.drv",
      sigs: ["fixture-1:VhRWXQVC7eazuAvl+QkFHYrj6BsJu4YBehOoF2+NhmE3ahRtDf22M22BwSIhDnwb3/Wj3RByf4KmNiR2k5F7DA=="],
    });
    const pre = Buffer.from(info);
    // The preamble and the NAR share chunks, split mid-preamble and mid-NAR.
    const body = Buffer.concat([pre, tree.nar]);
    const r = await upload([`x-attic-nar-info-preamble-size: ${pre.length}`], pieces(body, 333));
    expect(r.status, r.text).toBe(200);
    expect(r.json()).toMatchObject({ kind: "Uploaded" });
    const text = await (await fetch(`${l.url}/team-push/${tree.hash}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(text).toContain(`References: ${tree.references.join(" ")}\n`);
    expect(text).toContain("Deriver: jar1xcwarfr68mzzn1hg3j0z7rc4df0a-fx-tree_1.0+x=y?.drv\n");

    // The preamble wins over a header that says something else.
    await json("POST", "/_api/v1/cache-config/team-dedup", { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
    const pre2 = Buffer.from(uploadInfo("team-dedup", tree));
    const d = await upload([`x-attic-nar-info: ${uploadInfo("team-push", empty)}`, `x-attic-nar-info-preamble-size: ${pre2.length}`], [pre2, tree.nar]);
    expect(d.status, d.text).toBe(200);
    expect(d.json()).toMatchObject({ kind: "Deduplicated", frac_deduplicated: 1 });
    expect((await get(`/team-dedup/${tree.hash}.narinfo`)).status).toBe(200);
  });

  it("serves attic's NAR URL, nar/<storePathHash>.nar, with the same access rules (issue 13.18)", async () => {
    // A narinfo Nix cached from attic (30-day TTL) names the NAR by store path hash, no extension.
    const stored = await fetch(`${l.url}/team-push/${empty.hash}.narinfo`, { headers: { authorization: `Bearer ${token}` } });
    const narUrl = /^URL: (.*)$/m.exec(await stored.text())?.[1] as string;
    const canonical = Buffer.from(await (await fetch(`${l.url}/team-push/${narUrl}`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer());
    const r = await get(`/team-push/nar/${empty.hash}.nar`);
    expect(r.status, r.text).toBe(200);
    expect(r.headers["content-type"]).toBe("application/x-nix-nar");
    expect(r.body.equals(canonical)).toBe(true);
    expect(zstdDecompressSync(r.body).equals(empty.nar)).toBe(true);
    const head = await fetch(`${l.url}/team-push/nar/${empty.hash}.nar`, { method: "HEAD", headers: { authorization: `bearer ${token}` } });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBe(canonical.length);
    // Only this cache's paths, and only for callers who may pull.
    await expectAtticError(await get(`/team-dedup/nar/${empty.hash}.nar`), 404, "NoSuchObject");
    await expectAtticError(await get(`/team-push/nar/${top.hash}.nar`), 404, "NoSuchObject");
    await expectAtticError(await get(`/team-push/nar/${empty.hash}.nar`, ""), 401, "Unauthorized");
    await expectAtticError(await get(`/team-push/nar/${empty.hash}.nar`, await l.token({ pull: ["other"] })), 401, "Unauthorized");
    await expectAtticError(await get(`/team-push/nar/${empty.hash.slice(1)}e.nar.zst`), 400, "RequestError");
  });

  it("answers attic's error bodies for bad pushes, leaving nothing visible", async () => {
    const spool = () => readdir(l.config.spoolDir);
    // No info at all.
    await expectAtticError(await upload([], [top.nar]), 400, "RequestError", /X-Attic-Nar-Info must be set/);
    // Wrong NarHash: the NAR is read, checked, and refused.
    const wrong = uploadInfo("team-push", top, { nar_hash: tree.narHashHex });
    await expectAtticError(await upload([`x-attic-nar-info: ${wrong}`], [top.nar]), 400, "RequestError", /Bad NAR Hash or Size/);
    // Truncated NAR.
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-push", top)}`], [top.nar.subarray(0, top.nar.length - 8)]), 400, "RequestError");
    // Longer than claimed.
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-push", top, { nar_size: 64 })}`], [top.nar]), 400, "RequestError", /Bad NAR Hash or Size/);
    // Not a NAR at all (with a matching hash claim it would still fail the parser).
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-push", top)}`], [Buffer.alloc(top.narSize, 7)]), 400, "RequestError", /not a valid NAR|Bad NAR/);
    // Short preamble: the body ends inside it.
    await expectAtticError(await upload(["x-attic-nar-info-preamble-size: 5000"], [Buffer.from('{"cache":')]), 400, "RequestError", /preamble/);
    // Preamble over max-nar-info-size.
    await expectAtticError(await upload([`x-attic-nar-info-preamble-size: ${l.config.maxNarInfoSize + 1}`], [Buffer.from("{}")]), 400, "RequestError", /max-nar-info-size/);
    // A bad store path.
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-push", top, { store_path_hash: tree.hash })}`], [top.nar]), 400, "RequestError", /does not have the hash/);
    // Permissions: read-only token, stranger, no token.
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-push", top)}`], [top.nar], pullOnly), 403, "AccessError", /"push"/);
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("private", top)}`], [top.nar]), 401, "Unauthorized");
    await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-nope", top)}`], [top.nar]), 404, "NoSuchCache");
    expect((await get(`/team-push/${top.hash}.narinfo`)).status).toBe(404);
    expect(await spool()).toEqual([]);
    // A bad hash in get-missing-paths.
    await expectAtticError(await json("POST", "/_api/v1/get-missing-paths", { cache: "team-push", store_path_hashes: [tree.hash, "not-a-hash"] }), 400, "InvalidStorePathHash", /store_path_hashes\[1\]/);
    await expectAtticError(await json("POST", "/_api/v1/get-missing-paths", { cache: "team-push", store_path_hashes: [tree.hash] }, pullOnly), 403, "AccessError");
    // Anonymous on a private cache cannot tell it exists.
    await expectAtticError(await get("/_api/v1/cache-config/team-push", ""), 401, "Unauthorized");
  });

  it("accepts what attic accepts: any i32 priority, any key name, unknown fields (issue 13.16)", async () => {
    // A newer attic client's bodies: extra fields serde would ignore, priority -1, key names without ':'.
    const create = { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: -1, upstream_cache_key_names: ["cache.nixos.org", "my key"], new_in_attic_1_2: { x: 1 } };
    const created = await json("POST", "/_api/v1/cache-config/team-new", create);
    expect(created.status, created.text).toBe(200);
    expect((await get("/_api/v1/cache-config/team-new")).json()).toMatchObject({ priority: -1, upstream_cache_key_names: ["cache.nixos.org", "my key"] });
    expect((await get("/team-new/nix-cache-info")).text).toContain("Priority: -1\n");
    const patched = await json("PATCH", "/_api/v1/cache-config/team-new", { priority: -(2 ** 31), retention_period: "Global", future_field: true });
    expect(patched.status, patched.text).toBe(200);
    expect((await get("/_api/v1/cache-config/team-new")).json()).toMatchObject({ priority: -(2 ** 31) });
    // Still validated where larder relies on it.
    await expectAtticError(await json("PATCH", "/_api/v1/cache-config/team-new", { priority: 2 ** 31 }), 400, "RequestError", /priority/);
    await expectAtticError(await json("PATCH", "/_api/v1/cache-config/team-new", { store_dir: "relative" }), 400, "RequestError", /store_dir/);
    const missing = await json("POST", "/_api/v1/get-missing-paths", { cache: "team-new", store_path_hashes: [empty.hash], batch: 1 });
    expect(missing.json()).toEqual({ missing_paths: [empty.hash] });
    const r = await upload([`x-attic-nar-info: ${uploadInfo("team-new", empty, { surprise: { nested: [1] } })}`], [empty.nar]);
    expect(r.status, r.text).toBe(200);
    expect((await get(`/team-new/${empty.hash}.narinfo`)).status).toBe(200);
  });

  it("refuses poisoned upload info fields by the narinfo parser's rules, storing nothing (issue 13.6)", async () => {
    await json("POST", "/_api/v1/cache-config/team-poison", { keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] });
    const poisoned: [Record<string, unknown>, RegExp][] = [
      [{ system: "x86_64-linux\nStorePath: /nix/store/evil" }, /System/],
      [{ system: "x86_64-linux\r" }, /System/],
      [{ ca: "fixed:sha256:notahash" }, /content address/],
      [{ ca: "text:sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\nSig: forged:AAAA" }, /content address/],
      [{ ca: "nonsense" }, /content address/],
      [{ sigs: ["k:AAAA\nCA: x"] }, /Sig/],
      [{ sigs: ["no-colon"] }, /Sig/],
      [{ deriver: "/nix/store/jar1xcwarfr68mzzn1hg3j0z7rc4df0a-x.drv\nSystem: y" }, /Deriver|deriver/],
      [{ references: ["a3phgncn84kxx9h74fjk60x2bq3v8bs0-fx-empty-dir\nx"] }, /References|reference/],
    ];
    for (const [over, message] of poisoned) {
      await expectAtticError(await upload([`x-attic-nar-info: ${uploadInfo("team-poison", empty, over)}`.replace(/\r|\n/g, "")], [empty.nar]), 400, "RequestError", message);
      // The same in preamble mode (no header-line limits on what the JSON holds).
      const pre = Buffer.from(uploadInfo("team-poison", empty, over));
      await expectAtticError(await upload([`x-attic-nar-info-preamble-size: ${pre.length}`], [pre, empty.nar]), 400, "RequestError", message);
    }
    expect((await get(`/team-poison/${empty.hash}.narinfo`)).status).toBe(404);
    // Valid values are stored and served; attic's empty strings mean "none".
    const ca = "fixed:r:sha256:1gji5n5wr0rilzyw6a4p4x7nqyvvy7jia2g4yyy6vc669s2ir8md";
    const ok = await upload([`x-attic-nar-info: ${uploadInfo("team-poison", empty, { system: "x86_64-linux", ca, deriver: "" })}`], [empty.nar]);
    expect(ok.status, ok.text).toBe(200);
    const text = (await get(`/team-poison/${empty.hash}.narinfo`)).text;
    expect(text).toContain("System: x86_64-linux\n");
    expect(text).toContain(`CA: ${ca}\n`);
    expect(text).not.toContain("Deriver");
  });

  it("re-sending the same upload succeeds and changes nothing", async () => {
    const before = await l.server.ctx.db.kysely.selectFrom("nar").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow();
    const r = await upload([`x-attic-nar-info: ${uploadInfo("team-push", empty)}`], [empty.nar]);
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ kind: "Deduplicated" });
    const after = await l.server.ctx.db.kysely.selectFrom("nar").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });
});
