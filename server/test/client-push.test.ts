/**
 * The `larder` client end to end with the real Nix 2.8 client, on SQLite + local disk and
 * PostgreSQL + S3: push of a closure then `nix copy --from` with only the cache key trusted,
 * the upstream-key filter, one get-missing-paths call for 500 paths, `larder use` feeding real
 * substitution from a private cache, revocation, per-path delete.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { CLOSURE_NIX, closureSummary, createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { larderCli, LARDERD_MAIN, oneLineError, runNode, type RunResult } from "./support/client.ts";

const haveNix = requireTool("nix", "the client drives the real Nix client");

async function routeCount(l: Larder, route: string): Promise<number> {
  const m = await l.server.ctx.metrics.requests.get();
  return m.values.filter((v) => v.labels.route === route).reduce((n, v) => n + v.value, 0);
}

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`larder exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r;
}

describe.skipIf(!haveNix).each(BACKENDS)("larder client against larderd on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("client end to end on PostgreSQL + S3");
  let l: Larder;
  let nix: NixEnv;
  let pub: string;
  let token: string;
  let larder: ReturnType<typeof larderCli>;
  let home: string;

  beforeAll(async () => {
    if (skip) return;
    l = await startLarder(backend);
    nix = await createNixEnv();
    home = nix.env.HOME as string;
    larder = larderCli(nix.env);
    pub = await createTestCache(l, "main");
    token = await l.token({ pull: ["main", "up"], push: ["main", "up"], delete: ["main"] }, "ci");
    ok(await larder(["login", "here", `${l.url}/`, token]));
  });
  afterAll(async () => {
    await l?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("keeps its config at $XDG_CONFIG_HOME/larder/config.toml, mode 0600, several servers, one default", async () => {
    const file = join(home, ".config", "larder", "config.toml");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    ok(await larder(["login", "other", "http://127.0.0.1:9/"]));
    const text = await readFile(file, "utf8");
    expect(text).toMatch(/default-server = "here"/);
    expect(text).toContain(`[servers.other]`);
    expect(text).toContain(`endpoint = "${l.url}/"`);
  });

  it.skipIf(skip)("pushes a closure that nix copy --from pulls with only the cache key trusted", async () => {
    const top = await nix.buildClosure(`push-${randomBytes(4).toString("hex")}`);
    const r = ok(await larder(["push", "main", top, "--store", nix.src]));
    expect(r.stdout).toMatch(/^pushed 3 of 3 paths to "main"/m);
    // Not a terminal: one plain line per path with its size and speed, no control characters.
    const lines = r.stderr.split("\n").filter((x) => x.startsWith("pushed /nix/store/"));
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^pushed \/nix\/store\/\S+ \([\d.]+ (B|KiB|MiB), (uploaded|deduplicated), \d+\.\d\d (B|KiB|MiB|GiB)\/s\)$/);
    expect(lines.some((x) => x.startsWith(`pushed ${top} (`))).toBe(true);
    expect(r.stdout + r.stderr).not.toMatch(/\x1b/);

    await nix.setToken(l.url, token);
    const dst = nix.freshStore("dst");
    await nix.nix(["nix", "copy", "--from", `${l.url}/main`, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    const source = closureSummary(await nix.pathInfo(nix.src, top));
    expect(source).toHaveLength(3);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(source);
    await nix.nix(["nix", "--store", dst, "store", "verify", "-r", "--sigs-needed", "1", "--trusted-public-keys", pub, top]);

    // Pushing again finds everything there and uploads nothing.
    const again = ok(await larder(["push", "main", top, "--store", nix.src]));
    expect(again.stdout).toMatch(/pushed 0 of 3 paths.*3 already in the cache/);
  });

  it.skipIf(skip)("pushes and deletes through a ./result link whose target exists only in the --store chroot", async () => {
    const dir = join(nix.dir.path, `links-${randomBytes(4).toString("hex")}`);
    await mkdir(dir);
    const file = join(dir, "closure.nix");
    await writeFile(file, CLOSURE_NIX);
    const top = (await nix.nix(["nix-build", "--store", nix.src, file, "--argstr", "nonce", randomBytes(4).toString("hex"), "-o", join(dir, "result")])).trim();
    // The link names /nix/store/…, which is not on this machine: only under the chroot.
    expect(await readlink(join(dir, "result"))).toBe(top);
    await expect(stat(top)).rejects.toThrow();
    // A link to the link, and a file inside the store path, name the same store path.
    await symlink("result", join(dir, "again"));
    const r = ok(await larder(["push", "main", join(dir, "again"), "--store", nix.src]));
    expect(r.stdout).toMatch(/^pushed 3 of 3 paths to "main"/m);
    expect(r.stderr).toContain(`pushed ${top} (`);
    ok(await larder(["push", "main", join(dir, "result", "mid"), "--store", nix.src]));
    expect(ok(await larder(["delete", "main", join(dir, "result")])).stdout).toContain(`deleted ${top}`);
  });

  it.skipIf(skip)("forced preamble framing works too", async () => {
    const top = await nix.buildClosure(`pre-${randomBytes(4).toString("hex")}`);
    ok(await larder(["push", "main", top, "--store", nix.src, "--force-preamble", "-j", "1"]));
    const dst = nix.freshStore("pre");
    await nix.setToken(l.url, token);
    await nix.nix(["nix", "copy", "--from", `${l.url}/main`, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(await nix.pathInfo(dst, top)).toHaveLength(3);
  });

  it.skipIf(skip)("skips paths signed by an upstream key and says so; --ignore-upstream-cache-filter pushes them", async () => {
    await createTestCache(l, "up", { upstream: ["upstream-1"] });
    const key = await nix.generateKey("upstream-1");
    const top = await nix.buildClosure(`up-${randomBytes(4).toString("hex")}`);
    const infos = await nix.pathInfo(nix.src, top);
    const dep = infos.find((i) => i.path.includes("lt-dep-"))?.path as string;
    await nix.nix(["nix", "--store", nix.src, "store", "sign", "--key-file", key.secretFile, dep]);
    const r = ok(await larder(["push", "up", top, "--store", nix.src]));
    expect(r.stdout).toMatch(/pushed 2 of 3 paths to "up".*1 skipped as signed by upstream key upstream-1/);
    expect(r.stderr.split("\n")).toContain(`skipped ${dep} (signed by upstream key upstream-1)`);
    const depHash = dep.slice("/nix/store/".length, "/nix/store/".length + 32);
    const narinfo = (t: string) => fetch(`${l.url}/up/${depHash}.narinfo`, { headers: { authorization: `Bearer ${t}` } });
    expect((await narinfo(token)).status).toBe(404);
    const all = ok(await larder(["push", "up", top, "--store", nix.src, "--ignore-upstream-cache-filter"]));
    expect(all.stdout).toMatch(/pushed 1 of 3 paths.*2 already in the cache/);
    expect((await narinfo(token)).status).toBe(200);
  });

  // The request count does not depend on the backend; one is enough for this slow (500 dumps) test.
  // The request count does not depend on the backend; one run (SQLite) keeps the suite fast.
  (backend === "sqlite-local" ? it.skipIf(skip) : () => {})("pushes 500 small paths with exactly one get-missing-paths request", async () => {
    await createTestCache(l, "many");
    const many = await l.token({ pull: ["many"], push: ["many"] }, "many");
    ok(await larder(["login", "many", `${l.url}/`, many]));
    const dir = join(nix.dir.path, "many");
    await mkdir(dir, { recursive: true });
    const nonce = randomBytes(4).toString("hex");
    const files: string[] = [];
    for (let i = 0; i < 500; i++) {
      const f = join(dir, `small-${i}`);
      await writeFile(f, `${nonce} ${i}\n`);
      files.push(f);
    }
    const paths = (await nix.nix(["nix-store", "--store", nix.src, "--add", ...files])).trim().split("\n");
    expect(paths).toHaveLength(500);
    const before = await routeCount(l, "/_api/v1/get-missing-paths");
    const uploadsBefore = await routeCount(l, "/_api/v1/upload-path");
    const r = ok(await larder(["push", "many:many", "--stdin", "--store", nix.src, "-j", "8"], paths.join("\n")));
    expect(r.stdout).toMatch(/^pushed 500 of 500 paths to "many"/m);
    expect(await routeCount(l, "/_api/v1/get-missing-paths")).toBe(before + 1);
    expect(await routeCount(l, "/_api/v1/upload-path")).toBe(uploadsBefore + 500);
  });

  it.skipIf(skip)("larder use writes nix.conf and netrc with which real Nix substitutes from a private cache, idempotently", async () => {
    const top = await nix.buildClosure(`use-${randomBytes(4).toString("hex")}`);
    ok(await larder(["push", "main", top, "--store", nix.src]));
    await nix.setToken(l.url, undefined);
    const nixConf = join(home, ".config", "nix", "nix.conf");
    await mkdir(join(home, ".config", "nix"), { recursive: true });
    // An existing user config (no cache.nixos.org: this machine is offline).
    await writeFile(nixConf, "# mine\nsubstituters =\nconnect-timeout = 5\n");
    const first = ok(await larder(["use", "main"]));
    expect(first.stdout).toMatch(/configured Nix to substitute from/);
    const conf = await readFile(nixConf, "utf8");
    const netrcFile = join(home, ".config", "nix", "netrc");
    expect(conf).toContain(`substituters = ${l.url}/main\n`);
    expect(conf).toContain(`trusted-public-keys = ${pub} cache.nixos.org-1:`);
    expect(conf).toContain(`netrc-file = ${netrcFile}\n`);
    expect(conf).toContain("# mine\n");
    expect((await stat(netrcFile)).mode & 0o777).toBe(0o600);
    const netrc = await readFile(netrcFile, "utf8");
    const second = ok(await larder(["use", "main"]));
    expect(second.stdout).toMatch(/nothing changed/);
    expect(await readFile(nixConf, "utf8")).toBe(conf);
    expect(await readFile(netrcFile, "utf8")).toBe(netrc);

    // Real Nix, with nothing but what `larder use` wrote (the system nix.conf has no substituters).
    const subst = nix.freshStore("use");
    await nix.nix(["nix-store", "--store", subst, "-r", top]);
    expect(closureSummary(await nix.pathInfo(subst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
    await writeFile(nixConf, "");
  });

  it.skipIf(skip)("deletes one path: refused while referenced, then the path 404s while the rest is served", async () => {
    const top = await nix.buildClosure(`del-${randomBytes(4).toString("hex")}`);
    ok(await larder(["push", "main", top, "--store", nix.src]));
    const infos = await nix.pathInfo(nix.src, top);
    const dep = infos.find((i) => i.path.includes("lt-dep-"))?.path as string;
    const hashOf = (p: string) => p.slice(11, 43);
    const narinfo = (p: string) => fetch(`${l.url}/main/${hashOf(p)}.narinfo`, { headers: { authorization: `Bearer ${token}` } });

    const refused = oneLineError(await larder(["delete", "main", dep]));
    expect(refused).toMatch(/is referenced by .*lt-(mid|top)-.*delete those first, or delete it anyway with larder delete --force/);
    expect((await narinfo(dep)).status).toBe(200);

    // The same hash with another name is not this path (issue 14.8): refused, nothing deleted.
    const misnamed = `${top.slice(0, 44)}x`;
    expect(oneLineError(await larder(["delete", "main", misnamed]))).toMatch(new RegExp(`has no ${misnamed.slice(11)}: its path with that hash is ${top}; nothing was deleted`));
    expect((await narinfo(top)).status).toBe(200);
    ok(await larder(["delete", "main", top]));
    expect((await narinfo(top)).status).toBe(404);
    for (const i of infos.filter((x) => x.path !== top)) expect((await narinfo(i.path)).status).toBe(200);
    // The remaining paths still substitute.
    await nix.setToken(l.url, token);
    const mid = infos.find((i) => i.path.includes("lt-mid-"))?.path as string;
    const dst = nix.freshStore("after-delete");
    await nix.nix(["nix", "copy", "--from", `${l.url}/main`, "--to", dst, "--option", "trusted-public-keys", pub, mid]);
    await expect(nix.nix(["nix", "copy", "--from", `${l.url}/main`, "--to", dst, "--option", "trusted-public-keys", pub, top])).rejects.toThrow();

    ok(await larder(["delete", "main", dep, "--force"]));
    expect((await narinfo(dep)).status).toBe(404);
    // Without the permission: refused, naming it.
    const noDelete = await l.token({ pull: ["main"], push: ["main"] }, "nd");
    ok(await larder(["login", "nd", `${l.url}/`, noDelete]));
    expect(oneLineError(await larder(["delete", "nd:main", mid]))).toMatch(/permission denied.*"delete"/);
  });

  it.skipIf(skip)("refuses a revoked token on push, pull and cache-config (larderd revoke-token and larder token revoke)", async () => {
    const top = await nix.buildClosure(`rev-${randomBytes(4).toString("hex")}`);
    const configFile = join(nix.dir.path, "server.toml");
    await writeFile(configFile, l.toml);
    const tokens = { cli: await l.token({ pull: ["main"], push: ["main"] }, "leaky"), api: await l.token({ pull: ["main"], push: ["main"] }, "self") };
    ok(await larder(["login", "cli", `${l.url}/`, tokens.cli]));
    ok(await larder(["login", "self", `${l.url}/`, tokens.api]));
    ok(await larder(["push", "cli:main", top, "--store", nix.src]));

    ok(await runNode(LARDERD_MAIN, ["revoke-token", "-f", configFile, "--sub", "leaky"], nix.env));
    ok(await larder(["token", "revoke", "--server", "self"]));
    expect(await readFile(join(home, ".config", "larder", "config.toml"), "utf8")).not.toContain(tokens.api);

    for (const t of [tokens.cli, tokens.api]) {
      // The server re-reads the revocation list within seconds; wait for it.
      const deadline = Date.now() + 15_000;
      let status = 0;
      while (Date.now() < deadline) {
        status = (await fetch(`${l.url}/_api/v1/cache-config/main`, { headers: { authorization: `bearer ${t}` } })).status;
        if (status === 401) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(status).toBe(401);
      const body = (await (await fetch(`${l.url}/_api/v1/cache-config/main`, { headers: { authorization: `bearer ${t}` } })).json()) as { message: string };
      expect(body.message).toMatch(/revoked/);
      await nix.setToken(l.url, t);
      await expect(nix.nix(["nix", "copy", "--from", `${l.url}/main`, "--to", nix.freshStore("revoked"), "--option", "trusted-public-keys", pub, top])).rejects.toThrow();
    }
    const fresh = await nix.buildClosure(`rev2-${randomBytes(4).toString("hex")}`);
    expect(oneLineError(await larder(["push", "cli:main", fresh, "--store", nix.src]))).toMatch(/refused the token: token has been revoked; log in with a new one/);
    // Other tokens are unaffected.
    ok(await larder(["push", "main", fresh, "--store", nix.src]));
  });
});
