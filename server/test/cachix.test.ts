/**
 * The Cachix client against larderd, by replaying its requests (support/cachix-client.ts; the
 * client cannot be built here) for push, watch-store, use and import, then pulling what was pushed
 * with the real Nix 2.8 client trusting only the cache's key. On SQLite + local disk (part URLs
 * served by larderd with a signed capability) and PostgreSQL + S3 (presigned part URLs).
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { closureSummary, createNixEnv, type NixEnv, type PathInfo } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { CachixReplay, cachixNetrcEntry, compressNar, dumpNar, MIB, narInfoCreate, type PathToPush } from "./support/cachix-client.ts";
import { gcAYearOn } from "./support/gc.ts";
import { formatNix32, parseHash } from "../src/nix/hash.ts";
import { sweepCachixUploads } from "../src/cachix/sweep.ts";
import { rawRequest } from "./support/raw-http.ts";

const haveNix = requireTool("nix", "the Cachix replay pulls with the real Nix client");

/** top → mid → {dep, big}, top → dep; `big` is 12 MiB of random bytes: three 5 MiB parts. */
const CLOSURE = `{ nonce, bigBytes ? "12582912" }:
let
  mk = name: script: builtins.derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; };
  big = mk "cx-big-\${nonce}" "/usr/bin/head -c \${bigBytes} /dev/urandom > $out";
  dep = mk "cx-dep-\${nonce}" "echo dep \${nonce} > $out";
  mid = mk "cx-mid-\${nonce}" "echo \${dep} \${big} > $out";
in mk "cx-top-\${nonce}" "echo \${mid} \${dep} > $out"
`;
const SMALL = `{ nonce, dep }:
builtins.derivation { name = "cx-small-\${nonce}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo \${nonce} \${dep} > $out" ]; }
`;

const hashOf = (p: string) => p.slice(11, 43);
// The client sends the store DB's hash as sha256:<nix32>; Nix 2.8's path-info --json prints SRI.
const toPush = (i: PathInfo & { deriver?: string }): PathToPush => ({ path: i.path, narHash: formatNix32(parseHash(i.narHash)), narSize: i.narSize, references: i.references, deriver: i.deriver ?? null });

/** Topological order, references first. */
function referencesFirst(infos: PathInfo[]): PathInfo[] {
  const byPath = new Map(infos.map((i) => [i.path, i]));
  const out: PathInfo[] = [];
  const seen = new Set<string>();
  const visit = (i: PathInfo) => {
    if (seen.has(i.path)) return;
    seen.add(i.path);
    for (const r of i.references) if (r !== i.path && byPath.has(r)) visit(byPath.get(r)!);
    out.push(i);
  };
  infos.forEach(visit);
  return out;
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

describe.skipIf(!haveNix).each(BACKENDS)("Cachix client replay, %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("Cachix replay on PostgreSQL + S3");
  let larder: Larder;
  let nix: NixEnv;
  let pub: string;
  let token: string;
  let cachix: CachixReplay;

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend, { extraToml: `cachix-cache-domain = "localhost"` });
    nix = await createNixEnv();
    pub = await createTestCache(larder, "main");
    await createTestCache(larder, "open", { isPublic: true });
    token = await larder.token({ pull: ["main", "open"], push: ["main", "open"], configureCache: ["main"] }, "cachix");
    cachix = new CachixReplay({ host: larder.url, token });
  }, 120_000);
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  const build = async (nonce: string, bigBytes = 12 * MIB) => {
    const file = join(nix.dir.path, `cx-${nonce}.nix`);
    await writeFile(file, CLOSURE);
    return (await nix.nix(["nix-build", "--store", nix.src, file, "--argstr", "nonce", nonce, "--argstr", "bigBytes", String(bigBytes), "--no-out-link"])).trim();
  };
  const pullAndVerify = async (top: string, keys: string, cache = "main") => {
    const dst = nix.freshStore("dst");
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "copy", "--from", `${larder.url}/${cache}`, "--to", dst, "--option", "trusted-public-keys", keys, top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
  };
  const narinfoStatus = async (hash: string) => (await fetch(`${larder.url}/main/${hash}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).status;

  it.skipIf(skip)("GET cache: every BinaryCache field, the cache's URL and key; a stranger cannot tell a private cache from a missing one", async () => {
    const r = await cachix.getCache("main");
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({
      name: "main",
      uri: `http://main.localhost:${new URL(larder.url).port}`,
      isPublic: false,
      publicSigningKeys: [pub],
      githubUsername: "",
      permission: "Admin",
      preferredCompressionMethod: "ZSTD",
    });
    const anonymous = new CachixReplay({ host: larder.url, token: "" });
    const hidden = await anonymous.getCache("main");
    const missing = await anonymous.getCache("nonesuch");
    expect(hidden.status).toBe(401);
    expect([hidden.status, hidden.text]).toEqual([missing.status, missing.text]);
    // A public cache answers an anonymous `cachix use` (empty Bearer).
    const open = await anonymous.getCache("open");
    expect(open.status).toBe(200);
    expect(open.json<{ isPublic: boolean; permission: string }>()).toMatchObject({ isPublic: true, permission: "Read" });
    // With the bare `?` old servant-client versions append.
    expect((await cachix.request("GET", "/api/v1/cache/main?")).status).toBe(200);
  });

  it.skipIf(skip)("push: 8 paths at once in any order, a 3-part NAR; a path is held until its references arrive; Nix verifies the pull", async () => {
    const top = await build(`push-${randomBytes(4).toString("hex")}`);
    const infos = (await nix.pathInfo(nix.src, top)) as (PathInfo & { deriver?: string })[];
    expect(infos).toHaveLength(4);
    const hashes = infos.map((i) => hashOf(i.path));
    const q = await cachix.narinfoBulk("main", hashes);
    expect(q.status).toBe(200);
    expect(new Set(q.json<string[]>())).toEqual(new Set(hashes));

    // Referrers first: the top arrives before anything it refers to and must not be served.
    const order = referencesFirst(infos).reverse();
    const first = await cachix.uploadPath("main", nix, toPush(order[0]!), { chunkSize: 5 * MIB });
    expect(first.parts).toBe(1);
    expect(await narinfoStatus(hashOf(top))).toBe(404);
    expect((await cachix.narinfoHead("main", hashOf(top))).status).toBe(404);
    // Held paths count as missing, so a re-run of push uploads them again with their references.
    expect(await cachix.narinfoBulk("main", [hashOf(top)]).then((r) => r.json())).toEqual([hashOf(top)]);

    const counts: number[] = [];
    await pool(order.slice(1), 8, async (i) => counts.push((await cachix.uploadPath("main", nix, toPush(i), { chunkSize: 5 * MIB })).parts));
    expect(counts.sort()).toEqual([1, 1, 3]);
    // Signed when committed, the held path too (made visible by its last reference), before any read.
    const rows = await larder.server.ctx.db.kysely.selectFrom("object").select(["store_path_hash", "signature"]).where("store_path_hash", "in", hashes).execute();
    expect(rows).toHaveLength(hashes.length);
    for (const r of rows) expect(r.signature, r.store_path_hash).toMatch(new RegExp(`^${pub.split(":")[0]}:`));
    for (const h of hashes) expect(await narinfoStatus(h)).toBe(200);
    expect((await cachix.narinfoBulk("main", hashes)).json()).toEqual([]);
    await pullAndVerify(top, pub);
  }, 180_000);

  it.skipIf(skip)("watch-store: each batch's query over its closure names only what earlier batches did not push", async () => {
    const nonce = randomBytes(4).toString("hex");
    const top = await build(`watch-${nonce}`);
    const infos = (await nix.pathInfo(nix.src, top)) as (PathInfo & { deriver?: string })[];
    const dep = infos.find((i) => i.path.includes("cx-dep-"))!;
    const mid = infos.find((i) => i.path.includes("cx-mid-"))!;
    // Batch 1: the store's lock files for dep and mid went away together.
    const batch1 = [dep.path, mid.path];
    const closure1 = infos.filter((i) => i.path !== top);
    const m1 = (await cachix.narinfoBulk("main", closure1.map((i) => hashOf(i.path)))).json<string[]>();
    expect(new Set(m1)).toEqual(new Set(closure1.map((i) => hashOf(i.path))));
    await pool(closure1.filter((i) => m1.includes(hashOf(i.path))), 8, (i) => cachix.uploadPath("main", nix, toPush(i), { chunkSize: 5 * MIB }));
    expect(batch1.every((p) => closure1.some((i) => i.path === p))).toBe(true);
    // Batch 2: a new path on top of dep, and the top.
    const file = join(nix.dir.path, `small-${nonce}.nix`);
    await writeFile(file, SMALL);
    const small = (await nix.nix(["nix-build", "--store", nix.src, file, "--argstr", "nonce", nonce, "--arg", "dep", `builtins.storePath ${dep.path}`, "--no-out-link"]).catch(() => "")).trim();
    const batch2 = [top, ...(small ? [small] : [])];
    const closure2 = new Map<string, PathInfo & { deriver?: string }>();
    for (const p of batch2) for (const i of (await nix.pathInfo(nix.src, p)) as (PathInfo & { deriver?: string })[]) closure2.set(i.path, i);
    const m2 = (await cachix.narinfoBulk("main", [...closure2.keys()].map(hashOf))).json<string[]>();
    expect(new Set(m2)).toEqual(new Set(batch2.map(hashOf)));
    await pool(batch2.map((p) => closure2.get(p)!), 8, (i) => cachix.uploadPath("main", nix, toPush(i)));
    await pullAndVerify(top, pub);
  }, 180_000);

  it.skipIf(skip)("CACHIX_SIGNING_KEY: the registered key is listed, the client's bare signature is kept under its name next to larder's", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12).toString("base64");
    expect((await cachix.registerKey("main", raw)).status).toBe(200);
    const keyName = `main.${new URL(larder.url).hostname}-1`;
    const listed = (await cachix.getCache("main")).json<{ publicSigningKeys: string[] }>().publicSigningKeys;
    expect(listed).toEqual([pub, `${keyName}:${raw}`]);
    const top = await build(`signed-${randomBytes(4).toString("hex")}`);
    const infos = referencesFirst((await nix.pathInfo(nix.src, top)) as (PathInfo & { deriver?: string })[]);
    const signer = (fp: string) => sign(null, Buffer.from(fp), privateKey).toString("base64");
    // A signature by an unregistered key is refused, naming why.
    const stranger = generateKeyPairSync("ed25519").privateKey;
    await expect(cachix.uploadPath("main", nix, toPush(infos[0]!), { sign: (fp) => sign(null, Buffer.from(fp), stranger).toString("base64") })).rejects.toThrow(/complete: 400 .*cSig does not verify/);
    await pool(infos, 8, (i) => cachix.uploadPath("main", nix, toPush(i), { sign: signer, chunkSize: 5 * MIB }));
    const text = await (await fetch(`${larder.url}/main/${hashOf(top)}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    const sigs = text.split("\n").filter((l) => l.startsWith("Sig: ")).map((l) => l.slice(5).split(":")[0]);
    expect(sigs).toEqual([pub.split(":")[0], keyName]);
    // Nix trusting only the client's key verifies the client's signatures.
    await pullAndVerify(top, `${keyName}:${raw}`);
  }, 180_000);

  it.skipIf(skip)("import: HEAD each narinfo of an existing xz binary cache, upload only the 404s unchanged; Nix verifies the pull", async () => {
    // Nix's own xz of 12 MiB of random bytes takes half a minute; the push test covers big NARs.
    const top = await build(`import-${randomBytes(4).toString("hex")}`, 64 * 1024);
    const dir = join(nix.dir.path, `import-src-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `file://${dir}?compression=xz`, top]);
    const uploaded: string[] = [];
    const importAll = async () => {
      for (const f of (await readdir(dir)).filter((n) => n.endsWith(".narinfo"))) {
        const hash = f.slice(0, 32);
        const head = await cachix.narinfoHead("main", hash);
        if (head.status === 200) continue;
        expect(head.status).toBe(404);
        const fields = new Map((await readFile(join(dir, f), "utf8")).split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)] as [string, string]));
        expect(fields.get("Compression")).toBe("xz");
        const file = await readFile(join(dir, fields.get("URL")!));
        const p: PathToPush = {
          path: fields.get("StorePath")!,
          narHash: fields.get("NarHash")!,
          narSize: Number(fields.get("NarSize")),
          references: (fields.get("References") ?? "").split(" ").filter(Boolean),
          deriver: fields.get("Deriver") ?? null,
        };
        await cachix.uploadPath("main", nix, p, { compression: "xz", file, chunkSize: 5 * MIB });
        uploaded.push(hash);
      }
    };
    await importAll();
    expect(uploaded).toHaveLength(4);
    uploaded.length = 0;
    await importAll();
    expect(uploaded).toEqual([]);
    await pullAndVerify(top, pub);
  }, 180_000);

  it.skipIf(skip)("use on a private cache: the cache's own host as uri, the netrc entry cachix writes, Nix pulling with HTTP Basic ':token'", async () => {
    const port = new URL(larder.url).port;
    const info = (await cachix.getCache("main")).json<{ uri: string; isPublic: boolean; publicSigningKeys: string[] }>();
    expect(info).toMatchObject({ uri: `http://main.localhost:${port}`, isPublic: false });
    expect(cachixNetrcEntry(info.uri, token)).toBe(`machine main.localhost:${port} password ${token}\n`);
    const top = await build(`use-${randomBytes(4).toString("hex")}`, 1024);
    await pool(referencesFirst(await nix.pathInfo(nix.src, top)), 8, (i) => cachix.uploadPath("main", nix, toPush(i), { chunkSize: 5 * MIB }));
    // The cache host serves the cache's Nix URLs; Basic with an empty user is the netrc's token.
    const onCacheHost = (path: string, auth?: string) =>
      rawRequest(larder.url, [`GET ${path} HTTP/1.1`, `Host: main.localhost:${port}`, "Connection: close", ...(auth ? [`Authorization: ${auth}`] : [])]);
    expect((await onCacheHost(`/${hashOf(top)}.narinfo`, `Basic ${Buffer.from(`:${token}`).toString("base64")}`)).status).toBe(200);
    expect((await onCacheHost(`/${hashOf(top)}.narinfo`)).status).toBe(401);
    expect((await onCacheHost("/nix-cache-info", `Basic ${Buffer.from(`:${token}`).toString("base64")}`)).status).toBe(200);
    // Nix as `cachix use` sets it up: the uri as substituter, publicSigningKeys trusted, the
    // netrc entry. curl matches netrc machines by host name without the port, and in production
    // the uri has none (https on 443); here the server listens on a random port, so the entry is
    // written for the uri without it, the one difference from what the client writes.
    const netrc = join(nix.dir.path, "conf", "netrc");
    await writeFile(netrc, "");
    const dst = nix.freshStore("use");
    await expect(nix.nix(["nix", "copy", "--from", info.uri, "--to", nix.freshStore("anon"), "--option", "trusted-public-keys", info.publicSigningKeys.join(" "), top])).rejects.toThrow();
    await writeFile(netrc, cachixNetrcEntry(info.uri.replace(`:${port}`, ""), token));
    await nix.nix(["nix", "copy", "--from", info.uri, "--to", dst, "--option", "trusted-public-keys", info.publicSigningKeys.join(" "), top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
  }, 180_000);

  describe("hostile requests", () => {
    const small = async (): Promise<{ p: PathToPush; file: Buffer }> => {
      const top = await build(`hostile-${randomBytes(4).toString("hex")}`, 1024);
      const infos = (await nix.pathInfo(nix.src, top)) as (PathInfo & { deriver?: string })[];
      const dep = infos.find((i) => i.path.includes("cx-dep-"))!;
      return { p: toPush(dep), file: await compressNar(await dumpNar(nix, dep.path), "zst") };
    };
    const start = async (file: Buffer) => {
      const { narId, uploadId } = (await cachix.createUpload("main", "zst")).json<{ narId: string; uploadId: string }>();
      const md5 = createHash("md5").update(file).digest("base64");
      const url = (await cachix.partUrl("main", narId, uploadId, 1, md5)).json<{ uploadUrl: string }>().uploadUrl;
      return { narId, uploadId, md5, url };
    };

    it.skipIf(skip)("complete: NarHash mismatch refused and nothing visible, then the right one; twice is 200; another path is 409; abort then complete is 404", async () => {
      const { p, file } = await small();
      const u = await start(file);
      const put = await cachix.putPart(u.url, file, u.md5);
      expect(put.status).toBe(200);
      const etag = put.headers.get("etag")!;
      expect(etag).toBe(`"${Buffer.from(u.md5, "base64").toString("hex")}"`);
      const good = { parts: [{ partNumber: 1, eTag: etag }], narInfoCreate: narInfoCreate(p, file) };
      const lying = { ...good, narInfoCreate: { ...good.narInfoCreate, cNarHash: `sha256:${"1".repeat(52)}` } };
      const bad = await cachix.complete("main", u.narId, u.uploadId, lying);
      expect(bad.status).toBe(400);
      expect(bad.text).toMatch(/NarHash/);
      expect(await narinfoStatus(hashOf(p.path))).toBe(404);
      const garbled = await cachix.complete("main", u.narId, u.uploadId, { parts: null, narInfoCreate: { ...good.narInfoCreate, cFileHash: "sha256:abc" } });
      expect([garbled.status, garbled.text]).toEqual([400, expect.stringMatching(/narInfoCreate\.cFileHash/)]);
      const wrongOrder = await cachix.complete("main", u.narId, u.uploadId, { ...good, parts: [{ partNumber: 2, eTag: etag }, { partNumber: 1, eTag: etag }] });
      expect(wrongOrder.status).toBe(400);
      expect((await cachix.complete("main", u.narId, u.uploadId, good)).status).toBe(200);
      expect(await narinfoStatus(hashOf(p.path))).toBe(200);
      expect((await cachix.complete("main", u.narId, u.uploadId, good)).status).toBe(200);
      const other = { ...good, narInfoCreate: { ...good.narInfoCreate, cStoreHash: "0".repeat(32) } };
      expect((await cachix.complete("main", u.narId, u.uploadId, other)).status).toBe(409);

      const a = await start(file);
      expect((await cachix.putPart(a.url, file, a.md5)).status).toBe(200);
      expect((await cachix.abort("main", a.narId, a.uploadId)).status).toBe(200);
      const after = await cachix.complete("main", a.narId, a.uploadId, { parts: null, narInfoCreate: narInfoCreate(p, file) });
      expect(after.status).toBe(404);
      if (backend === "sqlite-local") {
        expect((await cachix.putPart(a.url, file, a.md5)).status).toBe(403);
      } else {
        // A presigned S3 URL cannot be revoked before it expires: the part lands, belongs to no
        // upload, and the next GC sweep removes it.
        expect((await cachix.putPart(a.url, file, a.md5)).status).toBe(200);
        expect([...(await keys(larder, `cachix-parts/${a.narId}/`))]).toHaveLength(1);
        await sweepCachixUploads({ ...larder.server.ctx, gc: larder.config.gc });
        expect([...(await keys(larder, `cachix-parts/${a.narId}/`))]).toEqual([]);
      }
      // parts: null (no ETags came back) completes from what was announced.
      const n = await start(file);
      expect((await cachix.putPart(n.url, file, n.md5)).status).toBe(200);
      expect((await cachix.complete("main", n.narId, n.uploadId, { parts: null, narInfoCreate: narInfoCreate(p, file) })).status).toBe(200);
      // Another cache's uploadId or a wrong uploadId names no upload.
      expect((await cachix.complete("open", n.narId, n.uploadId, good)).status).toBe(404);
      expect((await cachix.abort("main", n.narId, "x".repeat(32))).status).toBe(404);
    }, 120_000);

    it.skipIf(skip)("a file of exactly one chunk: the client's empty last part is uploaded and assembled", async () => {
      const { p } = await small();
      // xz stream padding (zero bytes, a multiple of four) makes the file exactly 5 MiB; it decodes to the same NAR.
      const xz = await compressNar(await dumpNar(nix, p.path), "xz");
      const exact = Buffer.concat([xz, Buffer.alloc(5 * MIB - xz.length)]);
      const r = await cachix.uploadPath("main", nix, p, { compression: "xz", file: exact, chunkSize: 5 * MIB });
      expect(r.parts).toBe(2);
      expect(await narinfoStatus(hashOf(p.path))).toBe(200);
    }, 60_000);

    // Each storage hands out its own kind of part URL: one test per backend.
    if (backend === "sqlite-local") it.skipIf(skip)("part URL capability: forged, another part's, wrong bytes, too large; no Authorization needed", async () => {
      const { file } = await small();
      const u = await start(file);
      const url = new URL(u.url);
      expect(url.pathname).toBe(`/_api/cachix/part/${u.narId}/1`);
      const forged = new URL(u.url);
      forged.searchParams.set("sig", randomBytes(32).toString("base64url"));
      expect((await cachix.putPart(forged.href, file, u.md5)).status).toBe(403);
      const later = new URL(u.url);
      later.searchParams.set("expires", String(Number(later.searchParams.get("expires")) + 3600));
      expect((await cachix.putPart(later.href, file, u.md5)).status).toBe(403);
      const part2 = new URL(u.url);
      part2.pathname = part2.pathname.replace(/\/1$/, "/2");
      expect((await cachix.putPart(part2.href, file, u.md5)).status).toBe(403);
      const other = Buffer.concat([file, Buffer.from("x")]);
      const wrong = await cachix.putPart(u.url, other, u.md5);
      expect(wrong.status).toBe(400);
      expect(wrong.text).toMatch(/MD5/);
      const tooBig = await fetch(u.url, { method: "PUT", headers: { "content-length": String(6 * 1024 ** 3), "content-md5": u.md5 }, body: "x", duplex: "half" } as RequestInit).catch((e: Error) => e);
      if (!(tooBig instanceof Error)) expect(tooBig.status).toBe(413);
      expect([...(await keys(larder, `cachix-parts/${u.narId}/`))]).toEqual([]);
      const ok = await cachix.putPart(u.url, file, u.md5);
      expect(ok.status).toBe(200);
      expect([...(await keys(larder, `cachix-parts/${u.narId}/`))]).toEqual([`cachix-parts/${u.narId}/1`]);
      expect((await cachix.abort("main", u.narId, u.uploadId)).status).toBe(200);
      expect([...(await keys(larder, `cachix-parts/${u.narId}/`))]).toEqual([]);
    }, 60_000);

    if (backend === "postgres-s3") it.skipIf(skip)("S3: part URLs are presigned PutObject URLs for the staging key with Content-MD5 signed", async () => {
      const { p, file } = await small();
      const u = await start(file);
      const url = new URL(u.url);
      expect(url.searchParams.get("X-Amz-SignedHeaders")?.split(";")).toContain("content-md5");
      expect(url.pathname.endsWith(`/cachix-parts/${u.narId}/1`)).toBe(true);
      // S3 refuses a body whose MD5 is not the signed Content-MD5 (BadDigest); s3rver checks
      // neither that nor V4 signatures and stores it. Completion still refuses those bytes.
      const other = Buffer.concat([file, Buffer.from("x")]);
      const put = await cachix.putPart(u.url, other, u.md5);
      expect(put.status).toBe(200);
      const done = await cachix.complete("main", u.narId, u.uploadId, { parts: [{ partNumber: 1, eTag: put.headers.get("etag") }], narInfoCreate: narInfoCreate(p, other) });
      expect([done.status, done.text]).toEqual([400, expect.stringMatching(/not the MD5 announced/)]);
      const unlisted = await cachix.complete("main", u.narId, u.uploadId, { parts: null, narInfoCreate: narInfoCreate(p, file) });
      expect([unlisted.status, unlisted.text]).toEqual([400, expect.stringMatching(/does not match narInfoCreate/)]);
      expect((await cachix.abort("main", u.narId, u.uploadId)).status).toBe(200);
    });

    it.skipIf(skip)("GC: a held path whose references never come expires unseen; stale uploads and their parts are swept", async () => {
      const top = await build(`orphan-${randomBytes(4).toString("hex")}`, 1024);
      const topInfo = ((await nix.pathInfo(nix.src, top)) as (PathInfo & { deriver?: string })[]).find((i) => i.path === top)!;
      await cachix.uploadPath("main", nix, toPush(topInfo));
      const { file } = await small();
      const u = await start(file);
      expect((await cachix.putPart(u.url, file, u.md5)).status).toBe(200);
      expect(await narinfoStatus(hashOf(top))).toBe(404);
      await gcAYearOn(larder);
      expect(await narinfoStatus(hashOf(top))).toBe(404);
      const db = larder.server.ctx.db.kysely;
      expect(await db.selectFrom("cachix_pending").select("id").where("store_path_hash", "=", hashOf(top)).execute()).toEqual([]);
      expect(await db.selectFrom("cachix_upload").select("id").where("nar_uuid", "=", u.narId).execute()).toEqual([]);
      expect([...(await keys(larder, `cachix-parts/${u.narId}/`))]).toEqual([]);
      // The top's references arriving now do not resurrect it.
      const rest = referencesFirst((await nix.pathInfo(nix.src, top)) as PathInfo[]).filter((i) => i.path !== top);
      await pool(rest, 8, (i) => cachix.uploadPath("main", nix, toPush(i), { chunkSize: 5 * MIB }));
      expect(await narinfoStatus(hashOf(top))).toBe(404);
    }, 180_000);
  });
});

async function keys(l: Larder, prefix: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const o of l.server.ctx.storage.list(prefix)) out.add(o.key);
  return out;
}
