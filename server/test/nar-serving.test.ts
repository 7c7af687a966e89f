/**
 * NAR downloads: the stored bytes as they are, with Content-Length, HEAD and single ranges; on
 * S3 optionally a redirect to a presigned URL that real Nix follows.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { zstdDecompressSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { createNixEnv, closureSummary, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";

const TREE = "1xf6ig6iwgd3gh8v8p8ksg9igdkxh4x9";
const DEPS = ["5w4y7fqdr975lpnr3vmfavn6qdrmhvyl", "f5dhjkjhvcb9zlp753r8akyfrpmiw32y", "kkghh5yr1q7icgffzyp7is78kf9hfk4k", "zzm5y1sj34xlszrjf9vhvfwhrvsd87rn"];

/** Uploads a fixture path (and what it needs first) the way Nix does: NAR, then narinfo. */
async function pushFixture(l: Larder, cache: string, token: string, hash: string): Promise<void> {
  const dir = join(FIXTURES, "caches", "none");
  const narinfo = await readFile(join(dir, `${hash}.narinfo`), "utf8");
  const narName = /^URL: nar\/(.*)$/m.exec(narinfo)?.[1] as string;
  const auth = { authorization: `Bearer ${token}` };
  const nar = await fetch(`${l.url}/${cache}/nar/${narName}`, { method: "PUT", headers: auth, body: await readFile(join(dir, "nar", narName)) });
  expect(nar.status, await nar.text()).toBe(200);
  const info = await fetch(`${l.url}/${cache}/${hash}.narinfo`, { method: "PUT", headers: auth, body: narinfo });
  expect(info.status, await info.text()).toBe(200);
}

/** The fixture closure of `hash`, references before referrers. */
async function fixtureClosureOrder(hash: string): Promise<string[]> {
  const order: string[] = [];
  const visit = async (h: string) => {
    if (order.includes(h)) return;
    const text = await readFile(join(FIXTURES, "caches", "none", `${h}.narinfo`), "utf8");
    const refs = (/^References: (.*)$/m.exec(text)?.[1] ?? "").split(" ").filter(Boolean).map((r) => r.slice(0, 32));
    for (const r of refs) if (r !== h) await visit(r);
    if (!order.includes(h)) order.push(h);
  };
  await visit(hash);
  return order;
}

describe("NAR serving", () => {
  let l: Larder;
  let token: string;
  let url: string;
  let stored: Buffer;
  let nar: Buffer;

  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    await createTestCache(l, "n");
    token = await l.token({ pull: ["n"], push: ["n"] });
    // fx-tree refers to others in the fixture closure; references go first, as Nix sends them.
    for (const hash of await fixtureClosureOrder(TREE)) await pushFixture(l, "n", token, hash);
    const narinfo = await (await fetch(`${l.url}/n/${TREE}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    url = `${l.url}/n/${/^URL: (.*)$/m.exec(narinfo)?.[1]}`;
    expect(url).toMatch(/\.nar\.zst$/);
    stored = Buffer.from(await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer());
    const narName = /^URL: nar\/(.*)$/m.exec(await readFile(join(FIXTURES, "caches", "none", `${TREE}.narinfo`), "utf8"))?.[1] as string;
    nar = await readFile(join(FIXTURES, "caches", "none", "nar", narName));
  });
  afterAll(() => l?.stop());

  it("serves the stored zstd bytes, whose hash and size are the narinfo's FileHash and FileSize", async () => {
    expect(zstdDecompressSync(stored).equals(nar)).toBe(true);
    const narinfo = await (await fetch(`${l.url}/n/${TREE}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(Number(/^FileSize: (\d+)$/m.exec(narinfo)?.[1])).toBe(stored.length);
    const { encodeNixBase32 } = await import("../src/nix/base32.ts");
    expect(/^FileHash: sha256:(.*)$/m.exec(narinfo)?.[1]).toBe(encodeNixBase32(createHash("sha256").update(stored).digest()));
    expect(DEPS.every((d) => narinfo.includes(d))).toBe(true);
  });

  it("answers HEAD with the length and no body", async () => {
    const res = await fetch(url, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get("content-length"))).toBe(stored.length);
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("content-type")).toBe("application/x-nix-nar");
  });

  it.each([
    ["bytes=0-9", 0, 9],
    ["bytes=10-", 10, -1],
    ["bytes=-7", -7, -1],
    ["bytes=5-5", 5, 5],
  ])("serves the range %s", async (range, start, end) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, range } });
    expect(res.status).toBe(206);
    const body = Buffer.from(await res.arrayBuffer());
    const from = start < 0 ? stored.length + start : start;
    const to = end < 0 ? stored.length - 1 : end;
    expect(body.equals(stored.subarray(from, to + 1))).toBe(true);
    expect(res.headers.get("content-range")).toBe(`bytes ${from}-${to}/${stored.length}`);
  });

  it("answers 416 to a range past the end", async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, range: `bytes=${stored.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${stored.length}`);
  });

  it("does not serve another cache's NAR by its name", async () => {
    await createTestCache(l, "other");
    const other = await l.token({ pull: ["other"] });
    const res = await fetch(url.replace("/n/", "/other/"), { headers: { authorization: `Bearer ${other}` } });
    expect(res.status).toBe(404);
    const head = await fetch(url.replace("/n/", "/other/"), { method: "HEAD", headers: { authorization: `Bearer ${other}` } });
    expect(head.status).toBe(404);
  });
});

const s3Ready = requireTool("nix", "Nix must follow the redirect") && postgresAvailable("presigned downloads run on PostgreSQL + S3");

describe.skipIf(!s3Ready)("presigned NAR downloads on S3", () => {
  let l: Larder;
  let nix: NixEnv;
  beforeAll(async () => {
    l = await startLarder("postgres-s3", { presign: true });
    nix = await createNixEnv();
  });
  afterAll(async () => {
    await l?.stop();
    await nix?.cleanup();
  });

  it("redirects NAR downloads to a short-lived presigned URL that Nix follows", async () => {
    const pub = await createTestCache(l, "direct");
    const token = await l.token({ pull: ["direct"], push: ["direct"] });
    await nix.setToken(l.url, token);
    const top = await nix.buildClosure(`presign-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/direct?compression=zstd`, top]);
    const hash = top.slice("/nix/store/".length, "/nix/store/".length + 32);
    const narinfo = await (await fetch(`${l.url}/direct/${hash}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    const res = await fetch(`${l.url}/direct/${/^URL: (.*)$/m.exec(narinfo)?.[1]}`, { headers: { authorization: `Bearer ${token}` }, redirect: "manual" });
    expect(res.status).toBe(307);
    const location = res.headers.get("location") as string;
    expect(location).toContain(l.s3?.endpoint.replace("127.0.0.1", "localhost"));
    expect(location).toMatch(/X-Amz-Expires=600/);
    const direct = await fetch(location);
    expect(direct.status).toBe(200);
    expect(Number(direct.headers.get("content-length"))).toBe(Number(/^FileSize: (\d+)$/m.exec(narinfo)?.[1]));

    const dst = nix.freshStore("presigned");
    await nix.nix(["nix", "copy", "--from", `${l.url}/direct`, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
  });
});
