/**
 * The push API on both backends: get-missing-paths with 10,000 hashes in one request (one SQL
 * statement, no parameter limit), and per-path delete semantics.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex } from "../src/nix/hash.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { lengthPrefix, NAR_MAGIC, padding, tokens } from "../src/nix/nar-encode.ts";
import { createHash, randomBytes } from "node:crypto";
import zlib from "node:zlib";

async function uploadFixture(l: Larder, token: string, cache: string, hash: string): Promise<Response> {
  const dir = join(FIXTURES, "caches", "none");
  const info = parseNarInfo(await readFile(join(dir, `${hash}.narinfo`), "utf8"));
  const nar = await readFile(join(dir, info.url));
  const meta = { cache, store_path_hash: hash, store_path: info.storePath, references: info.references, system: null, deriver: null, sigs: [], ca: null, nar_hash: formatHex(info.narHash), nar_size: info.narSize };
  return fetch(`${l.url}/_api/v1/upload-path`, { method: "PUT", headers: { authorization: `bearer ${token}`, "x-attic-nar-info": JSON.stringify(meta) }, body: nar });
}

describe.each(BACKENDS)("push API on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("push API on PostgreSQL");
  let l: Larder;
  let token: string;
  // fx-tree references fx-top, fx-dep, fx-link and itself.
  const TREE = "1xf6ig6iwgd3gh8v8p8ksg9igdkxh4x9";
  const TOP = "zzm5y1sj34xlszrjf9vhvfwhrvsd87rn";
  const DEP = "kkghh5yr1q7icgffzyp7is78kf9hfk4k";

  beforeAll(async () => {
    if (skip) return;
    l = await startLarder(backend);
    await createTestCache(l, "p");
    token = await l.token({ pull: ["p"], push: ["p"], delete: ["p"] });
  });
  afterAll(() => l?.stop());

  it.skipIf(skip)("answers get-missing-paths for 10,000 hashes in one request", async () => {
    for (const h of [TREE, TOP, DEP]) expect((await uploadFixture(l, token, "p", h)).status).toBe(200);
    const hashes = Array.from({ length: 9_997 }, () => encodeNixBase32(randomBytes(20)));
    hashes.splice(5000, 0, TREE, TOP, DEP);
    const res = await fetch(`${l.url}/_api/v1/get-missing-paths`, {
      method: "POST",
      headers: { authorization: `bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ cache: "p", store_path_hashes: hashes }),
    });
    expect(res.status).toBe(200);
    const { missing_paths } = (await res.json()) as { missing_paths: string[] };
    expect(missing_paths).toHaveLength(9_997);
    expect(missing_paths).not.toContain(TREE);
    expect(new Set(missing_paths)).toEqual(new Set(hashes.filter((h) => ![TREE, TOP, DEP].includes(h))));
  });

  it.skipIf(skip)("counts the paths get-missing-paths reports present as used (written with the next access flush), and only those", async () => {
    for (const h of [TREE, TOP]) expect((await uploadFixture(l, token, "p", h)).status).toBe(200);
    const db = l.server.ctx.db.kysely;
    const cacheId = (await db.selectFrom("cache").select("id").where("name", "=", "p").executeTakeFirstOrThrow()).id;
    await l.server.ctx.accessTracker.flush();
    await db.updateTable("object").set({ last_accessed_at: 0 }).where("cache_id", "=", cacheId).execute();
    const res = await fetch(`${l.url}/_api/v1/get-missing-paths`, {
      method: "POST",
      headers: { authorization: `bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ cache: "p", store_path_hashes: [TREE, encodeNixBase32(randomBytes(20))] }),
    });
    expect(res.status).toBe(200);
    await l.server.ctx.accessTracker.flush();
    const times = Object.fromEntries((await db.selectFrom("object").select(["store_path_hash", "last_accessed_at"]).where("cache_id", "=", cacheId).execute()).map((r) => [r.store_path_hash, r.last_accessed_at]));
    expect(times[TREE]).toBeGreaterThan(Date.now() - 60_000);
    expect(times[TOP]).toBe(0);
  });

  it.skipIf(skip)("deletes a path only when nothing in the cache references it, unless forced", async () => {
    for (const h of [TREE, TOP, DEP]) await uploadFixture(l, token, "p", h);
    const del = (h: string, q = "") => fetch(`${l.url}/_api/v1/cache/p/path/${h}${q}`, { method: "DELETE", headers: { authorization: `bearer ${token}` } });
    const refused = await del(DEP);
    expect(refused.status).toBe(409);
    const body = (await refused.json()) as { error: string; message: string };
    expect(body.error).toBe("Conflict");
    expect(body.message).toContain("1xf6ig6iwgd3gh8v8p8ksg9igdkxh4x9-fx-tree");
    // A self-reference does not block deleting a path.
    expect((await del(TREE)).status).toBe(200);
    expect((await fetch(`${l.url}/p/${TREE}.narinfo`, { headers: { authorization: `bearer ${token}` } })).status).toBe(404);
    expect((await fetch(`${l.url}/p/${DEP}.narinfo`, { headers: { authorization: `bearer ${token}` } })).status).toBe(200);
    expect((await del(TREE)).status).toBe(404);
    // fx-top still references fx-dep.
    const still = await del(DEP, "?force=false");
    expect(still.status).toBe(409);
    expect(((await still.json()) as { message: string }).message).toContain("zzm5y1sj34xlszrjf9vhvfwhrvsd87rn-fx-top");
    expect((await del(TOP)).status).toBe(200);
    expect((await del(DEP)).status).toBe(200);
    // Forced: gone even while referenced.
    for (const h of [TREE, DEP]) await uploadFixture(l, token, "p", h);
    expect((await del(DEP)).status).toBe(409);
    expect((await del(DEP, "?force=true")).status).toBe(200);
    expect((await fetch(`${l.url}/p/${DEP}.narinfo`, { headers: { authorization: `bearer ${token}` } })).status).toBe(404);
    expect((await del("not-a-hash")).status).toBe(400);
    // A name that is not the stored one is refused (issue 14.8); the right one, URL-encoded, works.
    for (const h of [DEP, TOP]) await uploadFixture(l, token, "p", h);
    const wrongName = await del(`${TOP}-fx-to`);
    expect(wrongName.status).toBe(404);
    expect(((await wrongName.json()) as { message: string }).message).toBe(`Cache "p" has no ${TOP}-fx-to: its path with that hash is /nix/store/${TOP}-fx-top; nothing was deleted.`);
    expect((await fetch(`${l.url}/p/${TOP}.narinfo`, { headers: { authorization: `bearer ${token}` } })).status).toBe(200);
    expect((await del(`${TOP}-fx top`)).status).toBe(400);
    expect((await del(encodeURIComponent(`${TOP}-fx-top`), "?force=true")).status).toBe(200);
    expect((await del(TOP, "?forse=true")).status).toBe(400);
    const pullOnly = await l.token({ pull: ["p"] });
    const r = await fetch(`${l.url}/_api/v1/cache/p/path/${TOP}`, { method: "DELETE", headers: { authorization: `bearer ${pullOnly}` } });
    expect(r.status).toBe(403);
    expect(((await r.json()) as { message: string }).message).toContain('"delete"');
    expect((await fetch(`${l.url}/_api/v1/cache/p/path/${TOP}`, { method: "DELETE" })).status).toBe(401);
  });

  it.skipIf(skip)("takes zstd NAR bodies (larder push), checks them decompressed and stores them as sent", async () => {
    await createTestCache(l, "z");
    const zt = await l.token({ pull: ["z"], push: ["z"] });
    const config = (await (await fetch(`${l.url}/_api/v1/cache-config/z`, { headers: { authorization: `bearer ${zt}` } })).json()) as { upload_zstd_level?: number };
    expect(config.upload_zstd_level).toBe(3);
    // A small NAR (ingested in memory) and one whose zstd exceeds the in-memory limit (streamed).
    for (const size of [8192, 2 * 1024 * 1024]) {
      const contents = Buffer.from(randomBytes(size).toString("base64").slice(0, size));
      const nar = Buffer.concat([tokens(NAR_MAGIC, "(", "type", "regular", "contents"), lengthPrefix(size), contents, padding(size), tokens(")")]);
      const hash = encodeNixBase32(randomBytes(20));
      const narHash = `sha256:${createHash("sha256").update(nar).digest("hex")}`;
      const meta = (o: object = {}) => JSON.stringify({ cache: "z", store_path_hash: hash, store_path: `/nix/store/${hash}-zstd-${size}`, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: narHash, nar_size: nar.length, ...o });
      const put = (body: Buffer, encoding: string, m = meta()) =>
        fetch(`${l.url}/_api/v1/upload-path`, { method: "PUT", headers: { authorization: `bearer ${zt}`, "x-attic-nar-info": m, "content-encoding": encoding }, body });
      const zstd = (b: Buffer) => zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
      const refusal = async (r: Response) => [r.status, ((await r.json()) as { message: string }).message] as const;
      const narinfo = () => fetch(`${l.url}/z/${hash}.narinfo`, { headers: { authorization: `bearer ${zt}` } });

      // Every refusal leaves nothing visible.
      const otherHash = `sha256:${createHash("sha256").update("another NAR").digest("hex")}`;
      expect(await refusal(await put(zstd(nar), "zstd", meta({ nar_hash: otherHash })))).toEqual([400, expect.stringContaining("Bad NAR Hash or Size")]);
      expect(await refusal(await put(zstd(nar), "zstd", meta({ nar_size: nar.length - 8 })))).toEqual([400, expect.stringContaining("longer than nar_size")]);
      expect(await refusal(await put(randomBytes(size), "zstd"))).toEqual([400, expect.stringContaining("does not decompress")]);
      expect(await refusal(await put(zstd(nar).subarray(0, 60), "zstd"))).toEqual([400, expect.stringMatching(/does not decompress|Bad NAR Hash or Size|not a valid NAR/)]);
      expect(await refusal(await put(zlib.gzipSync(nar), "gzip"))).toEqual([400, expect.stringContaining('Content-Encoding "gzip"')]);
      expect((await narinfo()).status).toBe(404);

      const sent = zstd(nar);
      const ok = await put(sent, "zstd");
      expect(ok.status, await ok.clone().text()).toBe(200);
      expect(((await ok.json()) as { file_size: number }).file_size).toBe(sent.length);
      const served = parseNarInfo(await (await narinfo()).text());
      expect(served.compression).toBe("zstd");
      expect(served.fileSize).toBe(sent.length);
      expect(encodeNixBase32(served.fileHash?.digest as Buffer)).toBe(encodeNixBase32(createHash("sha256").update(sent).digest()));
      const file = Buffer.from(await (await fetch(`${l.url}/z/${served.url}`, { headers: { authorization: `bearer ${zt}` } })).arrayBuffer());
      expect(file.equals(sent)).toBe(true);
    }
  });

  it.skipIf(skip)("lets a token revoke itself, and only itself", async () => {
    const a = await l.token({ pull: ["p"] }, "same");
    const b = await l.token({ pull: ["p"] }, "same");
    const info = (t: string) => fetch(`${l.url}/_api/v1/cache-config/p`, { headers: { authorization: `bearer ${t}` } });
    const r = await fetch(`${l.url}/_api/v1/revoke-token`, { method: "POST", headers: { authorization: `bearer ${a}`, "content-type": "application/json" }, body: "{}" });
    expect(r.status).toBe(200);
    expect((await info(a)).status).toBe(401);
    expect((await info(b)).status).toBe(200);
    expect((await fetch(`${l.url}/_api/v1/revoke-token`, { method: "POST" })).status).toBe(401);
    const all = await fetch(`${l.url}/_api/v1/revoke-token`, { method: "POST", headers: { authorization: `bearer ${b}`, "content-type": "application/json" }, body: '{"scope":"subject"}' });
    expect(all.status).toBe(200);
    expect((await info(b)).status).toBe(401);
    const bad = await fetch(`${l.url}/_api/v1/revoke-token`, { method: "POST", headers: { authorization: `bearer ${token}`, "content-type": "application/json" }, body: '{"scope":"everyone"}' });
    expect(bad.status).toBe(400);
  });
});
