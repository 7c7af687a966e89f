/**
 * Hostile and confusing auth cases, over HTTP: cache names that are JavaScript object members
 * (issue 13.11), tokens that must never reach a log line however they are sent (13.10), and 401
 * answers that say what is wrong with the token instead of blaming a permission (14.4).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { FIXTURES } from "./fixtures/nix/fixtures.ts";
import { parseNarInfo } from "../src/nix/narinfo.ts";
import { formatHex } from "../src/nix/hash.ts";

const EMPTY = "a3phgncn84kxx9h74fjk60x2bq3v8bs0";

describe("auth: hostile names, secrets in logs, messages", () => {
  let l: Larder;
  const logLines: string[] = [];
  let narinfo: ReturnType<typeof parseNarInfo>;
  let nar: Buffer;

  const uploadInfo = (cache: string) =>
    JSON.stringify({
      cache,
      store_path_hash: EMPTY,
      store_path: narinfo.storePath,
      references: narinfo.references,
      system: null,
      deriver: null,
      sigs: [],
      ca: null,
      nar_hash: formatHex(narinfo.narHash),
      nar_size: narinfo.narSize,
    });
  const upload = (cache: string, token: string | undefined) =>
    fetch(`${l.url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: { "x-attic-nar-info": uploadInfo(cache), ...(token !== undefined && { authorization: `bearer ${token}` }) },
      body: nar,
    });
  const message = async (res: Response) => ((await res.json()) as { message: string }).message;

  beforeAll(async () => {
    l = await startLarder("sqlite-local", { logLines });
    const dir = join(FIXTURES, "caches", "none");
    narinfo = parseNarInfo(await readFile(join(dir, `${EMPTY}.narinfo`), "utf8"));
    nar = await readFile(join(dir, narinfo.url));
  });
  afterAll(() => l?.stop());

  it("serves caches named like Object.prototype members to a `*` token (issue 13.11)", async () => {
    const star = await l.token({ pull: ["*"], push: ["*"], createCache: ["*"] }, "star");
    const teamOnly = await l.token({ pull: ["team-*"] }, "team");
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable"]) {
      const created = await fetch(`${l.url}/_api/v1/cache-config/${name}`, {
        method: "POST",
        headers: { authorization: `Bearer ${star}`, "content-type": "application/json" },
        body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
      });
      expect(created.status, `${name}: ${await created.text()}`).toBe(200);
      const pushed = await upload(name, star);
      expect(pushed.status, `${name}: ${await pushed.text()}`).toBe(200);
      const got = await fetch(`${l.url}/${name}/${EMPTY}.narinfo`, { headers: { authorization: `Bearer ${star}` } });
      expect(got.status, name).toBe(200);
      expect(await got.text()).toContain(`StorePath: ${narinfo.storePath}\n`);
      // And no one else gets in through the prototype either.
      expect((await fetch(`${l.url}/${name}/${EMPTY}.narinfo`, { headers: { authorization: `Bearer ${teamOnly}` } })).status, name).toBe(401);
      expect((await fetch(`${l.url}/${name}/${EMPTY}.narinfo`)).status, name).toBe(401);
    }
  });

  it("never logs a token, whether sent as ?token=, in any header, or as Basic auth (issue 13.10)", async () => {
    await createTestCache(l, "private");
    const secret = await l.token({ pull: ["private"] }, "leaky");
    const [, payload, signature] = secret.split(".") as [string, string, string];
    const basic = Buffer.from(`user:${secret}`).toString("base64");
    const before = logLines.length;
    // Denied: the token rides in places larder does not read it from.
    expect((await fetch(`${l.url}/private/nix-cache-info?token=${secret}`)).status).toBe(401);
    expect((await fetch(`${l.url}/private/${EMPTY}.narinfo?access_token=${secret}&x=1`, { headers: { "x-api-key": secret, "x-attic-token": secret } })).status).toBe(401);
    expect((await fetch(`${l.url}/_api/v1/cache-config/private?token=${secret}`, { method: "DELETE" })).status).toBe(401);
    // Accepted and rejected tokens in the headers larder does read, on logged (write) requests.
    expect((await fetch(`${l.url}/_api/v1/cache-config/private?token=${secret}`, { method: "DELETE", headers: { authorization: `Basic ${basic}` } })).status).toBe(403);
    expect((await fetch(`${l.url}/_api/v1/cache-config/private?sig=${signature}`, { method: "PATCH", headers: { authorization: `Bearer ${secret}x` } })).status).toBe(401);
    const lines = logLines.slice(before);
    expect(lines.some((line) => /access denied/.test(line))).toBe(true);
    expect(lines.some((line) => /\[redacted\]/.test(line))).toBe(true);
    for (const line of lines) {
      expect(line).not.toContain(payload);
      expect(line).not.toContain(signature);
      expect(line).not.toContain(basic);
    }
  });

  it("serves a path whose row was poisoned before validation existed, leaving out the bad fields (issue 13.6)", async () => {
    await createTestCache(l, "legacy");
    expect((await upload("legacy", l.rootToken)).status).toBe(200);
    // What an older larder stored from an unvalidated attic upload.
    await l.server.ctx.db.kysely
      .updateTable("object")
      .set({ system: "x86_64-linux\nStorePath: /nix/store/evil", ca: "bogus", deriver: "x\ny", sigs: JSON.stringify(["k:AAAA\nCA: x"]) })
      .where("store_path_hash", "=", EMPTY)
      .execute();
    l.server.ctx.caches.invalidate();
    const r = await fetch(`${l.url}/legacy/${EMPTY}.narinfo`, { headers: { authorization: `Bearer ${l.rootToken}` } });
    const text = await r.text();
    expect(r.status, text).toBe(200);
    expect(text).toContain(`StorePath: ${narinfo.storePath}\n`);
    expect(text).not.toMatch(/evil|bogus|System:|CA:|Deriver:|^Sig: k:/m);
    expect(text).toMatch(/^Sig: legacy:/m);
  });

  it("says why a token was not accepted, even on a public cache (issue 14.4)", async () => {
    await createTestCache(l, "open", { isPublic: true });
    const expired = await l.token({ pull: ["open"], push: ["open"] }, "old", -60);
    const wrongKey = `${(await l.token({ push: ["open"] })).slice(0, -4)}AAAA`;
    const elsewhere = await l.token({ pull: ["team-*", "main"], push: ["team-*"] }, "team");
    const none = await l.token({}, "nothing");

    // Anonymous pull of a public cache still works; a push says what is missing.
    expect((await fetch(`${l.url}/open/nix-cache-info`)).status).toBe(200);
    let r = await upload("open", undefined);
    expect(r.status).toBe(401);
    expect(await message(r)).toBe("Unauthorized: no token sent.");
    r = await upload("open", expired);
    expect(r.status).toBe(401);
    expect(await message(r)).toBe("Unauthorized: token expired.");
    r = await upload("open", wrongKey);
    expect(r.status).toBe(401);
    expect(await message(r)).toBe("Unauthorized: token signature is invalid.");
    r = await upload("open", elsewhere);
    expect(r.status).toBe(401);
    expect(await message(r)).toBe('Unauthorized: this token grants nothing on cache "open"; it covers "team-*", "main".');
    r = await upload("open", none);
    expect(await message(r)).toBe("Unauthorized: this token grants no permission on any cache.");
    // The same words for a cache that does not exist: nothing is learned about existence.
    r = await upload("team-missing", undefined);
    expect(await message(r)).toBe("Unauthorized: no token sent.");
    r = await upload("secret-missing", elsewhere);
    expect(await message(r)).toBe('Unauthorized: this token grants nothing on cache "secret-missing"; it covers "team-*", "main".');
    // A valid token with some right on the cache still gets attic's 403, naming the flag to mint.
    r = await upload("open", await l.token({ pull: ["open"] }));
    expect(r.status).toBe(403);
    expect(await message(r)).toBe('Access error: this token lacks the "push" permission on cache "open".');
  });
});
