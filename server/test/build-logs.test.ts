/**
 * Build logs with the real Nix 2.8 client: `nix store copy-log --to` uploads, `nix log --store`
 * reads back through the narinfo's Deriver; private caches keep them private; the size bound
 * answers 413 (also for a compressed body that inflates past it); GC removes a log with the last
 * output of its derivation, and its bytes with it.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { A_YEAR_ON, expireAllObjects, gcAYearOn } from "./support/gc.ts";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { larderCli } from "./support/client.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");
const MAX = 8192;

const LOGGED_NIX = `{ nonce }: builtins.derivation {
  name = "logged-\${nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo building \${nonce}; echo second line >&2; echo done > $out" ];
}`;

describe.skipIf(!haveNix).each(BACKENDS)("build logs on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("build logs on PostgreSQL + S3");
  let larder: Larder;
  let nix: NixEnv;
  let token: string;
  let out: string;
  let drv: string;
  let nonce: string;

  const writeTemp = async (n: string) => {
    const file = join(nix.dir.path, `added-${n}.txt`);
    await writeFile(file, `no build, no log ${n}\n`);
    return file;
  };
  const logUrl = (d: string) => `${larder.url}/main/log/${d.slice("/nix/store/".length)}`;
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });
  async function storageKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const o of larder.server.ctx.storage.list(prefix)) keys.push(o.key);
    return keys;
  }

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend, { extraToml: `[build-logs]\nmax-size = ${MAX}\n` });
    nix = await createNixEnv();
    await createTestCache(larder, "main");
    token = await larder.token({ pull: ["main"], push: ["main"] }, "ci");
    nonce = randomBytes(4).toString("hex");
    out = await nix.build(LOGGED_NIX, ["--argstr", "nonce", nonce]);
    drv = (await nix.nix(["nix-store", "--store", nix.src, "-q", "--deriver", out])).trim();
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/main`, out]);
  });
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("nix store copy-log --to uploads, nix log --store reads it back", async () => {
    await nix.nix(["nix", "store", "copy-log", "--from", nix.src, "--to", `${larder.url}/_push/main`, out]);
    const log = await nix.nix(["nix", "log", "--store", `${larder.url}/main`, out]);
    expect(log).toContain(`building ${nonce}`);
    expect(log).toContain("second line");
    const res = await fetch(logUrl(drv), { headers: auth(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe(log);
  });

  it.skipIf(skip)("is readable only with pull permission on a private cache", async () => {
    expect((await fetch(logUrl(drv))).status).toBe(401);
    const other = await larder.token({ pull: ["other"], push: ["other"] }, "other");
    expect((await fetch(logUrl(drv), { headers: auth(other) })).status).toBe(401);
    const put = await fetch(logUrl(drv), { method: "PUT", headers: auth(other), body: "overwritten" });
    expect(put.status).toBe(401);
    const pullOnly = await larder.token({ pull: ["main"] }, "reader");
    expect((await fetch(logUrl(drv), { method: "PUT", headers: auth(pullOnly), body: "overwritten" })).status).toBe(403);
    expect(await (await fetch(logUrl(drv), { headers: auth(pullOnly) })).text()).toContain(`building ${nonce}`);
  });

  it.skipIf(skip)("takes compressed uploads, refuses what is over the limit (413) or not a derivation (400)", async () => {
    const name = `${"0".repeat(32)}-gz-${nonce}.drv`;
    const url = `${larder.url}/main/log/${name}`;
    const gz = await fetch(url, { method: "PUT", headers: { ...auth(token), "content-encoding": "gzip" }, body: gzipSync("zipped log\n") });
    expect(gz.status).toBe(200);
    expect(await (await fetch(url, { headers: auth(token) })).text()).toBe("zipped log\n");

    const big = await fetch(url, { method: "PUT", headers: auth(token), body: "x".repeat(MAX + 1) });
    expect(big.status).toBe(413);
    expect(await big.text()).toMatch(/build-logs\.max-size/);
    // Small on the wire, over the limit once inflated.
    const bomb = await fetch(url, { method: "PUT", headers: { ...auth(token), "content-encoding": "gzip" }, body: gzipSync(Buffer.alloc(MAX * 4)) });
    expect(bomb.status).toBe(413);
    // The refused uploads left the earlier log as it was.
    expect(await (await fetch(url, { headers: auth(token) })).text()).toBe("zipped log\n");

    const notDrv = await fetch(`${larder.url}/main/log/${"0".repeat(32)}-x`, { method: "PUT", headers: auth(token), body: "x" });
    expect(notDrv.status).toBe(400);
    expect((await fetch(`${larder.url}/main/log/..%2Fx.drv`, { headers: auth(token) })).status).toBe(400);
    const badEnc = await fetch(url, { method: "PUT", headers: { ...auth(token), "content-encoding": "gzip" }, body: "not gzip" });
    expect(badEnc.status).toBe(400);
  });

  it.skipIf(skip)("larder push --logs uploads the logs the local store has, and skips paths without one", async () => {
    const n = randomBytes(4).toString("hex");
    const built = await nix.build(LOGGED_NIX, ["--argstr", "nonce", n]);
    const added = (await nix.nix(["nix-store", "--store", nix.src, "--add", await writeTemp(n)])).trim();
    const cli = larderCli(nix.env);
    const login = await cli(["login", "here", `${larder.url}/`, token]);
    expect(login.code, login.stderr).toBe(0);
    const r = await cli(["push", "main", built, added, "--store", nix.src, "--logs"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 build log uploaded/);
    expect(await nix.nix(["nix", "log", "--store", `${larder.url}/main`, built])).toContain(`building ${n}`);
  });

  it.skipIf(skip)("GC removes a log with the last output of its derivation, bytes included", async () => {
    const db = larder.server.ctx.db.kysely;
    const now = A_YEAR_ON();
    const gc = () => gcAYearOn(larder, now);
    // The orphan log (no outputs) goes after the grace period; the built path's log stays while its output does.
    await db.updateTable("object").set({ last_accessed_at: now }).execute();
    await gc();
    const kept = (await db.selectFrom("build_log").select("drv_name").execute()).map((r) => r.drv_name);
    expect(kept).toContain(drv.slice("/nix/store/".length));
    expect(kept.filter((d) => d.includes("-gz-"))).toEqual([]);
    expect((await fetch(logUrl(drv), { headers: auth(token) })).status).toBe(200);
    expect(await storageKeys("log/")).toHaveLength(kept.length);

    await expireAllObjects(larder);
    await gc();
    expect(await db.selectFrom("object").select("id").execute()).toHaveLength(0);
    expect(await db.selectFrom("build_log").select("id").execute()).toHaveLength(0);
    expect((await fetch(logUrl(drv), { headers: auth(token) })).status).toBe(404);
    expect(await storageKeys("log/")).toHaveLength(0);
  });
});
