/**
 * Public caches readable straight from the bucket, with the real Nix 2.8 client and s3rver:
 * pushes through larderd (nix copy, larder push, copy-log, a CA derivation) appear in the
 * cache's layout; with larderd stopped, Nix substitutes from s3rver's HTTP endpoint trusting only
 * the cache key, reads build logs and listings; private caches have none; GC and a crash at any
 * layout write or delete never leave a narinfo whose NAR or references are missing, and sync
 * repairs what a crash left. On SQLite + local storage (NARs streamed into a separate bucket) and
 * PostgreSQL + S3 (NARs copied server-side inside the storage bucket).
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectGarbage } from "../src/gc/run.ts";
import { createBucketLayout } from "../src/bucket/layout.ts";
import { createLayoutTarget, type LayoutTarget } from "../src/bucket/target.ts";
import type { BucketLayout } from "../src/bucket/types.ts";
import { A_YEAR_ON, expireAllObjects } from "./support/gc.ts";
import { createTestCache, startLarder, type Backend, type Larder } from "./support/larder.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";
import { LARDERD_MAIN, larderCli, runNode } from "./support/client.ts";
import { readLayout } from "./support/bucket.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");
const CA = ["--option", "extra-experimental-features", "ca-derivations"];
const LOGGED_NIX = `{ nonce }: builtins.derivation {
  name = "logged-\${nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo building \${nonce}; echo \${nonce} > $out" ];
}`;
const CA_NIX = `{ nonce }: builtins.derivation {
  name = "ca-\${nonce}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ca \${nonce} > $out" ];
  __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
}`;

/** A crash: what a kill -9 at this point would leave (every database write before it is committed, nothing after runs). */
class Crash extends Error {}

describe.skipIf(!haveNix).each(["sqlite-local", "postgres-s3"] as Backend[])("bucket layout on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("bucket layout on PostgreSQL + S3");
  let larder: Larder;
  let bucketS3: S3rverHandle | undefined;
  let s3: { endpoint: string; bucket: string };
  let target: LayoutTarget;
  let nix: NixEnv;
  let token: string;
  let pub: string;
  let top: string;
  let logged: string;
  let caOut: string;
  let caFile: string;
  let nonce: string;

  const prefix = (cache: string) => `public/${cache}/`;
  // Another host name than larderd's: Nix sends its netrc token to every URL of a host, and S3 refuses Basic auth.
  const httpBase = (cache: string) => `${s3.endpoint.replace("127.0.0.1", "localhost")}/${s3.bucket}/public/${cache}`;
  const layout = (cache: string) => readLayout(target, prefix(cache), httpBase(cache));
  const db = () => larder.server.ctx.db.kysely;
  const idle = () => larder.server.ctx.bucketLayout!.idle();
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${larder.url}/_api/v1/${path}`, { ...init, headers: { authorization: `Bearer ${larder.rootToken}`, "content-type": "application/json", ...init.headers } });
  /** A second layout engine on the same database and bucket, stopping where the test says. */
  const engine = (checkpoint?: (step: string, key: string) => void): BucketLayout =>
    createBucketLayout({
      db: larder.server.ctx.db,
      pool: larder.server.ctx.pool,
      layout: larder.config.bucketLayout,
      log: pino({ level: "silent" }),
      ...(checkpoint && { checkpoint }),
    })!;
  const cacheId = async (name: string) => (await db().selectFrom("cache").select("id").where("name", "=", name).executeTakeFirstOrThrow()).id;
  const substitute = (cache: string, path: string, key = pub) =>
    nix.nix(["nix", "copy", "--from", httpBase(cache), "--to", nix.freshStore("from-bucket"), "--option", "trusted-public-keys", key, path]);

  beforeAll(async () => {
    if (skip) return;
    let extraToml = "";
    if (backend === "sqlite-local") {
      bucketS3 = await startS3rver();
      extraToml = `[bucket-layout]\nbucket = "${bucketS3.bucket}"\nregion = "${bucketS3.region}"\nendpoint = "${bucketS3.endpoint}"\npublic-url = "https://cdn.example.com/"\n[bucket-layout.credentials]\naccess_key_id = "${bucketS3.credentials.accessKeyId}"\nsecret_access_key = "${bucketS3.credentials.secretAccessKey}"\n`;
    }
    larder = await startLarder(backend, { extraToml });
    s3 = bucketS3 ?? larder.s3!;
    target = createLayoutTarget(larder.config.bucketLayout.target!);
    nix = await createNixEnv();
    pub = await createTestCache(larder, "pub", { isPublic: true });
    expect((await api("cache-config/pub", { method: "PATCH", body: JSON.stringify({ bucket_layout: true }) })).status).toBe(200);
    token = await larder.token({ pull: ["*"], push: ["*"] }, "ci");
    await nix.setToken(larder.url, token);
    nonce = randomBytes(4).toString("hex");
    top = await nix.buildClosure(nonce);
    logged = await nix.build(LOGGED_NIX, ["--argstr", "nonce", nonce]);
    caFile = join(nix.dir.path, "ca.nix");
    await writeFile(caFile, CA_NIX);
    caOut = (await nix.nix(["nix-build", "--store", nix.src, ...CA, caFile, "--argstr", "nonce", nonce, "--no-out-link"])).trim();
    // Nix 2.8's own push, a build log, a CA derivation's realisation, and larder push.
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/pub`, top]);
    await nix.nix(["nix", "store", "copy-log", "--from", nix.src, "--to", `${larder.url}/_push/pub`, logged]);
    await nix.nix(["nix", "--store", nix.src, ...CA, "copy", "--to", `${larder.url}/_push/pub`, "-f", caFile, "--argstr", "nonce", nonce]);
    const cli = larderCli(nix.env);
    expect((await cli(["login", "here", `${larder.url}/`, token])).code).toBe(0);
    const pushed = await cli(["push", "pub", logged, "--store", nix.src]);
    expect(pushed.code, pushed.stderr).toBe(0);
    await idle();
  }, 300_000);
  afterAll(async () => {
    await larder?.stop();
    await bucketS3?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("with larderd stopped, Nix 2.8 substitutes from the bucket, trusting only the cache key; nix log and nix store ls work", async () => {
    const view = await layout("pub");
    expect(view.problems).toEqual([]);
    // top, mid, dep, the logged path, the CA output; the log; the realisation; nix-cache-info.
    expect(view.narinfos).toHaveLength(5);
    expect([...view.keys].filter((k) => k.startsWith("log/"))).toHaveLength(1);
    expect([...view.keys].filter((k) => k.startsWith("realisations/"))).toHaveLength(1);
    expect(await (await fetch(`${httpBase("pub")}/nix-cache-info`)).text()).toBe("WantMassQuery: 1\nStoreDir: /nix/store\nPriority: 41\n");
    // The layout's narinfo is the one larderd serves, byte for byte.
    const hash = top.slice("/nix/store/".length, "/nix/store/".length + 32);
    expect(await (await fetch(`${httpBase("pub")}/${hash}.narinfo`)).text()).toBe(await (await fetch(`${larder.url}/pub/${hash}.narinfo`)).text());

    await larder.server.close();
    try {
      await substitute("pub", top);
      expect(await nix.nix(["nix", "log", "--store", httpBase("pub"), logged])).toContain(`building ${nonce}`);
      const listed = await nix.nix(["nix", "store", "ls", "--store", httpBase("pub"), top]);
      expect(listed).toContain("mid");
      expect(listed).toContain("dep");
      // The CA output, through its realisation.
      const dst = nix.freshStore("ca");
      await nix.nix(["nix-build", "--store", dst, ...CA, caFile, "--argstr", "nonce", nonce, "--no-out-link", "--max-jobs", "0", "--option", "substituters", httpBase("pub"), "--option", "trusted-public-keys", pub]);
      // Signatures are checked: with another key trusted, Nix refuses the paths.
      const other = await nix.generateKey("other");
      await expect(substitute("pub", top, other.publicKey)).rejects.toThrow(/signature|lacks a valid/);
    } finally {
      await larder.restart();
    }
  }, 300_000);

  it.skipIf(skip)("a new cache key re-signs the layout: Nix accepts the paths with the new key and refuses the old one", async () => {
    expect((await api("cache-config/pub", { method: "PATCH", body: JSON.stringify({ keypair: "Generate" }) })).status).toBe(200);
    await idle();
    const rotated = ((await (await api("cache-config/pub")).json()) as { public_key: string }).public_key;
    expect(rotated).not.toBe(pub);
    expect((await layout("pub")).problems).toEqual([]);
    // (Before the GC test below, which collects every cache's paths.)
    await substitute("pub", top, rotated);
    await expect(substitute("pub", top, pub)).rejects.toThrow(/signature|lacks a valid/);
    pub = rotated;
  });

  it.skipIf(skip)("only public caches have a layout: 400 for a private one, and making a cache private removes it", async () => {
    const refused = await api("cache-config/priv", { method: "POST", body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [], bucket_layout: true }) });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/only a public cache/);
    await createTestCache(larder, "flip", { isPublic: true });
    expect((await api("cache-config/flip", { method: "PATCH", body: JSON.stringify({ is_public: false, bucket_layout: true }) })).status).toBe(400);
    const cli = larderCli(nix.env);
    expect((await cli(["login", "root", `${larder.url}/`, larder.rootToken])).code).toBe(0);
    const configured = await cli(["cache", "configure", "root:flip", "--bucket-layout"]);
    expect(configured.code, configured.stderr).toBe(0);
    const config = (await (await api("cache-config/flip")).json()) as { bucket_layout: boolean; bucket_endpoint?: string };
    expect(config.bucket_layout).toBe(true);
    if (backend === "sqlite-local") {
      expect(config.bucket_endpoint).toBe("https://cdn.example.com/flip");
      // A client picks the bucket's URL (no token: the layout is public) instead of larderd's; on
      // another machine, so this file's Nix does not get the made-up CDN as a substituter.
      const elsewhere = { ...nix.env, HOME: join(nix.dir.path, "client-home"), XDG_CONFIG_HOME: join(nix.dir.path, "client-config") };
      const client = larderCli(elsewhere);
      expect((await client(["login", "root", `${larder.url}/`, larder.rootToken])).code).toBe(0);
      const used = await client(["use", "root:flip", "--bucket"]);
      expect(used.code, used.stderr).toBe(0);
      const conf = await readFile(join(elsewhere.XDG_CONFIG_HOME, "nix", "nix.conf"), "utf8");
      expect(conf).toMatch(/substituters = https:\/\/cdn\.example\.com\/flip/);
      expect(conf).not.toContain("netrc");
    }
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/flip`, top]);
    await idle();
    expect((await layout("flip")).narinfos).toHaveLength(3);

    expect((await api("cache-config/flip", { method: "PATCH", body: JSON.stringify({ is_public: false }) })).status).toBe(200);
    await idle();
    expect([...(await layout("flip")).keys]).toEqual([]);
    expect(((await (await api("cache-config/flip")).json()) as { bucket_layout: boolean }).bucket_layout).toBe(false);
  });

  it.skipIf(skip)("a crash at any layout write leaves nothing Nix would accept broken, and sync repairs it", async () => {
    const crashKey = await createTestCache(larder, "crash", { isPublic: true });
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/crash`, top]);
    const id = await cacheId("crash");
    await db().updateTable("cache").set({ bucket_layout: 1 }).where("id", "=", id).execute();
    let writes = 0;
    await engine(() => void writes++).sync(id);
    const complete = await layout("crash");
    expect(complete.narinfos).toHaveLength(3);
    expect(writes).toBeGreaterThanOrEqual(7);
    for (let n = 1; n <= writes; n++) {
      // Back to no layout, then a run that dies at its n-th write.
      await db().updateTable("cache").set({ bucket_layout: 0 }).where("id", "=", id).execute();
      await engine().sync(id);
      expect((await layout("crash")).keys.size).toBe(0);
      await db().updateTable("cache").set({ bucket_layout: 1 }).where("id", "=", id).execute();
      // Once dead, nothing more reaches the bucket.
      let seen = 0;
      const crashing = engine((step, key) => {
        if (++seen >= n) throw new Crash(`crash before ${step} ${key}`);
      });
      await crashing.sync(id);
      expect((await layout("crash")).problems, `crash at write ${n}`).toEqual([]);
      await engine().sync(id);
      const repaired = await layout("crash");
      expect(repaired.problems).toEqual([]);
      expect(repaired.narinfos).toEqual(complete.narinfos);
    }
    await substitute("crash", top, crashKey);

    // The operator's repair: `larderd bucket-layout sync <cache>` after a crash at the fourth write.
    await db().updateTable("cache").set({ bucket_layout: 0 }).where("id", "=", id).execute();
    await engine().sync(id);
    await db().updateTable("cache").set({ bucket_layout: 1 }).where("id", "=", id).execute();
    let seen = 0;
    await engine(() => {
      if (++seen >= 4) throw new Crash("crash");
    }).sync(id);
    const toml = join(larder.dir.path, "server.toml");
    await writeFile(toml, larder.toml);
    const r = await runNode(LARDERD_MAIN, ["bucket-layout", "sync", "crash", "-f", toml], { PATH: process.env.PATH ?? "/usr/bin:/bin" });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ caches: 1, pending: 0 });
    expect(JSON.parse(r.stdout).published).toBeGreaterThan(0);
    expect((await layout("crash")).narinfos).toEqual(complete.narinfos);
  }, 300_000);

  it.skipIf(skip)("GC removes expired paths from the layout top-down: closed after every delete, a crash mid-way repaired by the next run", async () => {
    await createTestCache(larder, "gc", { isPublic: true });
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/gc`, top]);
    await nix.nix(["nix", "store", "copy-log", "--from", nix.src, "--to", `${larder.url}/_push/gc`, logged]);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/gc`, logged]);
    const id = await cacheId("gc");
    await db().updateTable("cache").set({ bucket_layout: 1 }).where("id", "=", id).execute();
    await engine().sync(id);
    expect((await layout("gc")).narinfos).toHaveLength(4);

    const gc = (bucketLayout: BucketLayout) =>
      collectGarbage({ db: larder.server.ctx.db, pool: larder.server.ctx.pool, gc: { ...larder.config.gc, defaultRetentionSeconds: 3600 }, buildLogs: larder.config.buildLogs, log: pino({ level: "silent" }), bucketLayout }, A_YEAR_ON());
    await larder.server.ctx.accessTracker.flush();
    await db().updateTable("object").set({ created_at: 0, last_accessed_at: 0 }).where("cache_id", "=", id).execute();
    // First run dies at its third delete; every delete before it was checked to leave a closed layout.
    let deletes = 0;
    const checked: string[][] = [];
    await gc(
      engine((step, key) => {
        if (!step.startsWith("delete-")) return;
        if (++deletes >= 3) throw new Crash(`crash before deleting ${key}`);
      }),
    );
    const afterCrash = await layout("gc");
    expect(afterCrash.problems).toEqual([]);
    expect(afterCrash.narinfos.length).toBeGreaterThan(0);
    await gc(
      engine(async () => {
        const v = await layout("gc");
        expect(v.problems).toEqual([]);
        checked.push(v.narinfos);
      }),
    );
    // Top-down, one level at a time: at some point dep's narinfo is still there and top's is gone.
    const hashOf = (p: string) => p.slice("/nix/store/".length, "/nix/store/".length + 32);
    const depHash = hashOf((await nix.nix(["nix-store", "--store", nix.src, "-q", "--references", `${top}`])).split("\n").find((p) => p.includes("lt-dep-"))!);
    expect(checked.some((c) => c.includes(depHash) && !c.includes(hashOf(top)))).toBe(true);
    // The cache itself stays, and so does its (empty) binary cache.
    expect([...(await layout("gc")).keys]).toEqual(["nix-cache-info"]);
    expect(await db().selectFrom("bucket_entry").select("kind").where("cache_id", "=", id).execute()).toEqual([{ kind: "info" }]);
  }, 300_000);

  // Only where the layout has a bucket of its own: stopping the storage bucket would fail the push itself.
  if (backend === "sqlite-local") it("a failing bucket never fails a push: the path is served by larderd and the failure counted", async () => {
    await createTestCache(larder, "late", { isPublic: true });
    expect((await api("cache-config/late", { method: "PATCH", body: JSON.stringify({ bucket_layout: true }) })).status).toBe(200);
    await idle();
    await bucketS3!.stop();
    const n = randomBytes(4).toString("hex");
    const path = await nix.buildClosure(n);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/_push/late`, path]);
    await idle();
    const failures = await larder.server.ctx.metrics.registry.getSingleMetricAsString("larder_bucket_layout_failures_total");
    expect(failures).toMatch(/op="path"} [1-9]/);
    expect(await nix.nix(["nix", "path-info", "--store", `${larder.url}/late`, path])).toContain(path);
    expect((await fetch(`${larder.url}/late/${path.slice(11, 43)}.narinfo`)).status).toBe(200);
  });

});
