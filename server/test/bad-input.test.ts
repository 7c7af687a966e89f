/**
 * Every kind of bad input gets a 4xx with a message that says what was wrong — never a 5xx —
 * and a failed upload leaves nothing visible or stored.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT } from "jose";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { CLAIM_NAMESPACE } from "../src/auth/permissions.ts";

const NONE = join(FIXTURES, "caches", "none");
// fx-empty-dir: no references; fx-tree: a 10 KiB NAR with four references.
const EMPTY = "a3phgncn84kxx9h74fjk60x2bq3v8bs0";
const TREE = "1xf6ig6iwgd3gh8v8p8ksg9igdkxh4x9";

interface Fixture {
  hash: string;
  narinfo: string;
  narName: string;
  nar: Buffer;
}

async function fixture(hash: string): Promise<Fixture> {
  const narinfo = await readFile(join(NONE, `${hash}.narinfo`), "utf8");
  const narName = /^URL: nar\/(.*)$/m.exec(narinfo)?.[1] as string;
  return { hash, narinfo, narName, nar: await readFile(join(NONE, "nar", narName)) };
}

const nix32 = (b: Buffer) => encodeNixBase32(createHash("sha256").update(b).digest());

describe("bad input", () => {
  let l: Larder;
  let push: string;
  let pullOnly: string;
  let empty: Fixture;
  let tree: Fixture;

  const put = (path: string, body: Buffer | string, token = push, headers: Record<string, string> = {}) =>
    fetch(`${l.url}${path}`, { method: "PUT", body, headers: { authorization: `Bearer ${token}`, ...headers } });
  const get = (path: string, token?: string) => fetch(`${l.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  async function expectError(res: Response, status: number, error: string, message?: RegExp): Promise<void> {
    const text = await res.text();
    expect(res.status, text).toBe(status);
    const body = JSON.parse(text) as { code: number; error: string; message: string };
    expect(body.code).toBe(status);
    expect(body.error).toBe(error);
    if (message) expect(body.message).toMatch(message);
  }

  async function storedNars(): Promise<number> {
    let n = 0;
    for await (const _ of l.server.ctx.storage.list("nar/")) n++;
    return n;
  }

  async function nothingLeftBehind(before: number): Promise<void> {
    expect(await storedNars()).toBe(before);
    expect(await readdir(l.config.spoolDir)).toEqual([]);
  }

  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    await createTestCache(l, "c");
    push = await l.token({ pull: ["c"], push: ["c"] });
    pullOnly = await l.token({ pull: ["c"] });
    empty = await fixture(EMPTY);
    tree = await fixture(TREE);
  });
  afterAll(() => l?.stop());

  it("answers an unknown cache with 401 to strangers and 404 to callers with rights on the name", async () => {
    await expectError(await get("/nope/nix-cache-info"), 401, "Unauthorized");
    await expectError(await get("/nope/nix-cache-info", await l.token({ pull: ["nope"] })), 404, "NoSuchCache");
  });

  it("rejects an invalid cache name", async () => {
    await expectError(await get("/bad.name!/nix-cache-info", push), 400, "InvalidCacheName", /bad\.name!/);
    await expectError(await get(`/${"x".repeat(51)}/nix-cache-info`, push), 400, "InvalidCacheName");
  });

  it("rejects a store-path hash that is not 32 nix-base32 characters", async () => {
    await expectError(await get("/c/abc.narinfo", push), 400, "InvalidStorePathHash", /32 nix-base32/);
    await expectError(await get(`/c/${"e".repeat(32)}.narinfo`, push), 400, "InvalidStorePathHash"); // 'e' is not in the alphabet
    await expectError(await put(`/c/${"u".repeat(31)}.narinfo`, empty.narinfo), 400, "InvalidStorePathHash");
  });

  it("rejects a narinfo whose StorePath does not match its URL", async () => {
    expect((await put(`/c/nar/${empty.narName}`, empty.nar)).status).toBe(200);
    await expectError(await put(`/c/${TREE}.narinfo`, empty.narinfo), 400, "RequestError", /does not belong to/);
  });

  it("rejects NarHash and NarSize mismatches and names the field", async () => {
    expect((await put(`/c/nar/${empty.narName}`, empty.nar)).status).toBe(200);
    const otherHash = `sha256:${nix32(Buffer.from("something else"))}`;
    const badHash = empty.narinfo.replace(/^NarHash: .*$/m, `NarHash: ${otherHash}`);
    await expectError(await put(`/c/${EMPTY}.narinfo`, badHash), 400, "RequestError", /NarHash/);
    const badSize = empty.narinfo.replace(/^NarSize: .*$/m, "NarSize: 97");
    await expectError(await put(`/c/${EMPTY}.narinfo`, badSize), 400, "RequestError", /NarSize 97/);
    const badFileSize = empty.narinfo.replace(/^FileSize: .*$/m, "FileSize: 5");
    await expectError(await put(`/c/${EMPTY}.narinfo`, badFileSize), 400, "RequestError", /FileSize 5/);
    expect((await get(`/c/${EMPTY}.narinfo`, push)).status).toBe(404);
  });

  it("rejects a narinfo before its NAR, and an unparseable narinfo, naming the field", async () => {
    await expectError(await put(`/c/${TREE}.narinfo`, tree.narinfo), 400, "RequestError", /has not been uploaded/);
    await expectError(await put(`/c/${EMPTY}.narinfo`, empty.narinfo.replace(/^NarSize: .*$/m, "NarSize: lots")), 400, "RequestError", /NarSize/);
    await expectError(await put(`/c/${EMPTY}.narinfo`, "hello"), 400, "RequestError", /invalid narinfo/);
  });

  it("refuses narinfo fields a narinfo could not carry: invalid CA, System, Sig (issue 13.6)", async () => {
    expect((await put(`/c/nar/${empty.narName}`, empty.nar)).status).toBe(200);
    const poisoned: [string, string, RegExp][] = [
      ["CA: fixed:sha256:notahash", "CA", /content address "fixed:sha256:notahash"/],
      ["CA: text:sha1:0000000000000000000000000000000000000000", "CA", /text content addresses use sha256/],
      ["CA: fixed:r:sha256:1gji5n5wr0rilzyw6a4p4x7nqyvvy7jia2g4yyy6vc669s2ir8md trailing", "CA", /content address/],
      ["CA: nonsense", "CA", /content address "nonsense"/],
      ["System: x86_64 linux", "System", /System "x86_64 linux"/],
      ["System: x86_64-linux\u0001", "System", /System/],
      ["Sig: key:not base64!", "Sig", /Sig "key:not base64!"/],
      ["Deriver: nothash-x.drv", "Deriver", /Deriver/],
    ];
    for (const [line, field, message] of poisoned) {
      const text = `${empty.narinfo}${line.replace("\\u0001", "\u0001")}\n`;
      await expectError(await put(`/c/${EMPTY}.narinfo`, text), 400, "RequestError", message);
      expect(field).toBeTruthy();
    }
    expect((await get(`/c/${EMPTY}.narinfo`, push)).status).toBe(404);
    // Valid ones of each are kept and served.
    const good = `${empty.narinfo}System: x86_64-linux\nCA: fixed:r:sha256:1gji5n5wr0rilzyw6a4p4x7nqyvvy7jia2g4yyy6vc669s2ir8md\n`;
    expect((await put(`/c/${EMPTY}.narinfo`, good)).status).toBe(200);
    const served = await (await get(`/c/${EMPTY}.narinfo`, push)).text();
    expect(served).toContain("System: x86_64-linux\n");
    expect(served).toContain("CA: fixed:r:sha256:1gji5n5wr0rilzyw6a4p4x7nqyvvy7jia2g4yyy6vc669s2ir8md\n");
    expect((await fetch(`${l.url}/_api/v1/cache/c/path/${EMPTY}?force=true`, { method: "DELETE", headers: { authorization: `Bearer ${l.rootToken}` } })).status).toBe(200);
  });

  it("rejects a truncated NAR body and keeps nothing", async () => {
    const before = await storedNars();
    const cut = tree.nar.subarray(0, tree.nar.length - 100);
    // Named after the whole file: the bytes do not hash to the name.
    await expectError(await put(`/c/nar/${tree.narName}`, cut), 400, "RequestError", /truncated/);
    // Named after the cut bytes: they are not a complete NAR.
    await expectError(await put(`/c/nar/${nix32(cut)}.nar`, cut), 400, "RequestError", /not a valid NAR/);
    await nothingLeftBehind(before);
    expect((await get(`/c/${TREE}.narinfo`, push)).status).toBe(404);
  });

  it("rejects unknown and undecodable compression", async () => {
    const before = await storedNars();
    await expectError(await put(`/c/nar/${empty.narName}.lz4`, empty.nar), 400, "InvalidCompressionType", /lz4/);
    await expectError(await put(`/c/nar/${empty.narName}.rar`, empty.nar), 400, "RequestError", /not a NAR file name/);
    const garbage = randomBytes(300);
    await expectError(await put(`/c/nar/${nix32(garbage)}.nar.zst`, garbage), 400, "RequestError", /does not decompress/);
    await expectError(await put(`/c/nar/${nix32(garbage)}.nar.xz`, garbage), 400, "RequestError", /does not decompress/);
    await nothingLeftBehind(before);
  });

  it("rejects traversal in NAR names, encoded or not, without a 5xx", async () => {
    for (const path of ["/c/nar/../../etc/passwd", "/c/nar/..%2f..%2fetc%2fpasswd", "/c/nar/%2e%2e%2fserver.db", "/c/nar/..", "/c/nar/%00.nar"]) {
      for (const method of ["GET", "PUT"]) {
        const res = await fetch(`${l.url}${path}`, { method, headers: { authorization: `Bearer ${push}` }, ...(method === "PUT" && { body: "x" }) });
        expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
      }
    }
  });

  it("rejects a narinfo over the 1 MiB limit", async () => {
    const huge = `${empty.narinfo}${"X-Padding: y\n".repeat(90_000)}`;
    await expectError(await put(`/c/${EMPTY}.narinfo`, huge), 413, "PayloadTooLarge", /limit/);
  });

  it("refuses malformed, expired and wrongly signed tokens, saying why", async () => {
    await expectError(await put(`/c/${EMPTY}.narinfo`, empty.narinfo, "not-a-jwt"), 401, "Unauthorized", /malformed/);
    const claims = { sub: "x", [CLAIM_NAMESPACE]: { caches: { c: { r: 1, w: 1 } } } };
    const expired = await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) - 60 }).setProtectedHeader({ alg: "HS256" }).sign(l.server.ctx.tokens.verifyKey);
    await expectError(await get("/c/nix-cache-info", expired), 401, "Unauthorized", /expired/);
    const forged = await new SignJWT({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: "HS256" }).sign(randomBytes(32));
    await expectError(await get("/c/nix-cache-info", forged), 401, "Unauthorized", /signature/);
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ ...claims, exp: 9e9 })).toString("base64url")}.`;
    await expectError(await get("/c/nix-cache-info", none), 401, "Unauthorized");
  });

  it("refuses a token for another cache as if the cache did not exist", async () => {
    const other = await l.token({ pull: ["other"], push: ["other"] });
    await expectError(await get("/c/nix-cache-info", other), 401, "Unauthorized");
    await expectError(await put(`/c/nar/${empty.narName}`, empty.nar, other), 401, "Unauthorized");
  });

  it("refuses a PUT without push permission and keeps nothing", async () => {
    const before = await storedNars();
    await expectError(await put(`/c/nar/${tree.narName}`, tree.nar, pullOnly), 403, "AccessError", /push/);
    await expectError(await put(`/c/${TREE}.narinfo`, tree.narinfo, pullOnly), 403, "AccessError", /push/);
    await nothingLeftBehind(before);
  });

  it("refuses a push to a cache that does not exist", async () => {
    await expectError(await put(`/ghost/nar/${empty.narName}`, empty.nar, await l.token({ push: ["*"] })), 404, "NoSuchCache");
    await expectError(await put(`/ghost/nar/${empty.narName}`, empty.nar, push), 401, "Unauthorized");
  });

  it("accepts a re-sent PUT of the same data and changes nothing", async () => {
    expect((await put(`/c/nar/${empty.narName}`, empty.nar)).status).toBe(200);
    expect((await put(`/c/${EMPTY}.narinfo`, empty.narinfo)).status).toBe(200);
    const first = await (await get(`/c/${EMPTY}.narinfo`, push)).text();
    const stored = await storedNars();
    expect((await put(`/c/nar/${empty.narName}`, empty.nar)).status).toBe(200);
    expect((await put(`/c/${EMPTY}.narinfo`, empty.narinfo)).status).toBe(200);
    expect(await (await get(`/c/${EMPTY}.narinfo`, push)).text()).toBe(first);
    expect(await storedNars()).toBe(stored);
  });

  it("answers unknown routes and methods with JSON errors, not 5xx", async () => {
    await expectError(await get("/_api/v1/nothing-here", push), 404, "NotFound");
    await expectError(await get(`/c/${EMPTY}.nothing`, push), 404, "NotFound");
    const res = await fetch(`${l.url}/_api/v1/cache-config/c`, { method: "POST", body: "{not json", headers: { authorization: `Bearer ${push}`, "content-type": "application/json" } });
    expect(res.status).toBe(400);
  });
});
