/**
 * Several storage backends behind one larderd: placement by strategy (per server and per cache),
 * capacity counted from the database, a full or failing backend skipped for new NARs, 507 when
 * none can take one, and draining a backend while clients pull continuously — every served path
 * readable throughout, old copies deleted only after storage.retire-after. On local+local with
 * SQLite and local+S3 (s3rver) with PostgreSQL.
 */
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { parseConfig, type Config } from "../src/config/load.ts";
import { startServer, type RunningServer } from "../src/server.ts";
import { buildClaims, signClaims } from "../src/auth/tokens.ts";
import { collectGarbage } from "../src/gc/run.ts";
import { storageDrain, storageRenameBackend } from "../src/cli/storage.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { LARDERD_MAIN, runNode } from "./support/client.ts";
import { createCache } from "./support/load.ts";
import { narOfFile } from "./support/nar.ts";
import { globalPostgres } from "./support/postgres.ts";
import { startS3rver, type S3rverHandle } from "./support/s3rver.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";
import { ALL_PERMISSIONS } from "./support/larder.ts";
import { missing } from "./support/requirements.ts";

type Mix = "local+local" | "local+s3";
const MIXES: Array<{ mix: Mix; db: "sqlite" | "postgres" }> = [
  { mix: "local+local", db: "sqlite" },
  { mix: "local+s3", db: "postgres" },
];

const NAR_BYTES = 40_000;
const CAP_A = 400_000;
const CAP_B = 1_000_000;
const silent = pino({ level: process.env.LARDER_TEST_LOG ?? "silent" });

interface Pushed {
  hash: string;
  nar: Buffer;
}

interface Setup {
  dir: TempDir;
  s3?: S3rverHandle;
  toml: string;
  config: Config;
  server: RunningServer;
  token: string;
  pushed: Map<string, Pushed[]>;
  stop(): Promise<void>;
}

function backendsToml(mix: Mix, dir: string, s3: S3rverHandle | undefined, names = ["a", "b"]): string {
  const a = `[[storage.backends]]\nname = "${names[0]}"\ntype = "local"\npath = ${JSON.stringify(join(dir, "a"))}\ncapacity = ${CAP_A}\n`;
  const b =
    mix === "local+local" || !s3
      ? `[[storage.backends]]\nname = "${names[1]}"\ntype = "local"\npath = ${JSON.stringify(join(dir, "b"))}\ncapacity = "1 MB"\n`
      : `[[storage.backends]]\nname = "${names[1]}"\ntype = "s3"\nregion = "${s3.region}"\nbucket = "${s3.bucket}"\nendpoint = "${s3.endpoint}"\ncapacity = "1 MB"\n` +
        `[storage.backends.credentials]\naccess_key_id = "${s3.credentials.accessKeyId}"\nsecret_access_key = "${s3.credentials.secretAccessKey}"\n`;
  return `[storage]\nstrategy = "in-order"\n${a}${b}[storage.caches.rr]\nstrategy = "round-robin"\n[storage.caches.lu]\nstrategy = "least-used"\n`;
}

/** `tmpfsA`: backend "a" is a tmpfs of that size with no configured capacity: a disk that really fills up. */
async function start(mix: Mix, db: "sqlite" | "postgres", opts: { tmpfsA?: string } = {}): Promise<Setup> {
  const dir = await makeTempDir(`strategies-${mix}`);
  let mounted = false;
  if (opts.tmpfsA) {
    await mkdir(join(dir.path, "a"));
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${opts.tmpfsA},mode=0700`, "tmpfs", join(dir.path, "a")]);
    if (r.status !== 0) {
      await dir.cleanup();
      missing(`cannot mount a tmpfs (${r.stderr.toString().trim()})`, "the full-backend test needs a real full file system");
      throw new Error("no tmpfs");
    }
    mounted = true;
  }
  const s3 = mix === "local+s3" ? await startS3rver() : undefined;
  const url = db === "sqlite" ? `sqlite://${join(dir.path, "server.db")}` : await globalPostgres().createDatabase();
  const toml = [
    `listen = "127.0.0.1:0"`,
    `spool-dir = ${JSON.stringify(join(dir.path, "spool"))}`,
    `[database]\nurl = ${JSON.stringify(url)}`,
    opts.tmpfsA ? backendsToml(mix, dir.path, s3).replace(`capacity = ${CAP_A}\n`, "") : backendsToml(mix, dir.path, s3),
    `[compression]\ntype = "none"`,
    `[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"`,
    `[log]\nlevel = "silent"`,
  ].join("\n");
  const config = parseConfig(toml, {});
  const server = await startServer(config, { log: silent, accessFlushMs: 200, storageRefreshMs: 200, storageFailureCooldownMs: 1500 });
  const token = await signClaims(server.ctx.tokens, buildClaims({ sub: "root", validitySeconds: 3600, grants: ALL_PERMISSIONS() }));
  for (const c of ["io", "rr", "lu"]) await createCache(server.url, token, c);
  const setup: Setup = {
    dir,
    ...(s3 && { s3 }),
    toml,
    config,
    server,
    token,
    pushed: new Map(),
    async stop() {
      await setup.server.close();
      await s3?.stop();
      if (mounted) spawnSync("umount", [join(dir.path, "a")]);
      await dir.cleanup();
    },
  };
  return setup;
}

/** Pushes one fresh path of about `bytes` through attic's upload-path; returns the status. */
async function push(s: Setup, cache: string, bytes = NAR_BYTES): Promise<{ status: number; body: string; path: Pushed }> {
  const hash = encodeNixBase32(randomBytes(20));
  const nar = narOfFile(randomBytes(bytes));
  const meta = { cache, store_path_hash: hash, store_path: `/nix/store/${hash}-strategy`, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: `sha256:${createHash("sha256").update(nar).digest("hex")}`, nar_size: nar.length };
  const res = await fetch(`${s.server.url}/_api/v1/upload-path`, { method: "PUT", headers: { authorization: `bearer ${s.token}`, "x-attic-nar-info": JSON.stringify(meta) }, body: nar });
  const body = await res.text();
  const path = { hash, nar };
  if (res.status === 200) s.pushed.set(cache, [...(s.pushed.get(cache) ?? []), path]);
  return { status: res.status, body, path };
}

/** What is wrong with serving `p` (narinfo, then the whole NAR and a range of it), or undefined. */
async function problem(s: Setup, cache: string, p: Pushed): Promise<string | undefined> {
  const auth = { authorization: `bearer ${s.token}` };
  const info = await fetch(`${s.server.url}/${cache}/${p.hash}.narinfo`, { headers: auth });
  const text = await info.text();
  if (info.status !== 200) return `${p.hash}: narinfo ${info.status}`;
  const narUrl = /^URL: (.*)$/m.exec(text)?.[1];
  const nar = await fetch(`${s.server.url}/${cache}/${narUrl}`, { headers: auth });
  const bytes = Buffer.from(await nar.arrayBuffer());
  if (nar.status !== 200 || !bytes.equals(p.nar)) return `${p.hash}: NAR ${nar.status}, ${bytes.length} bytes`;
  const ranged = await fetch(`${s.server.url}/${cache}/${narUrl}`, { headers: { ...auth, range: "bytes=100-199" } });
  const part = Buffer.from(await ranged.arrayBuffer());
  if (ranged.status !== 206 || !part.equals(p.nar.subarray(100, 200))) return `${p.hash}: range ${ranged.status}`;
  return undefined;
}

async function allProblems(s: Setup): Promise<string[]> {
  const out: string[] = [];
  for (const [cache, paths] of s.pushed) for (const p of paths) {
    const x = await problem(s, cache, p);
    if (x) out.push(x);
  }
  return out;
}

async function narsPerBackend(s: Setup, cache?: string): Promise<Map<string, number>> {
  let q = s.server.ctx.db.kysely.selectFrom("nar").select(["nar.backend", (eb) => eb.fn.countAll<number>().as("n")]).groupBy("nar.backend");
  if (cache) q = q.innerJoin("object", "object.nar_id", "nar.id").innerJoin("cache", "cache.id", "object.cache_id").where("cache.name", "=", cache);
  return new Map((await q.execute()).map((r) => [r.backend, Number(r.n)]));
}

async function storedKeys(s: Setup, backend: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of s.server.ctx.pool.get(backend).storage.list("nar/")) keys.push(o.key);
  return keys;
}

describe.each(MIXES)("storage strategies on $mix with $db", ({ mix, db }) => {
  let s: Setup;
  beforeAll(async () => {
    s = await start(mix, db);
  }, 60_000);
  afterAll(async () => s?.stop());

  it("round-robin alternates backends, least-used evens bytes, and every NAR is read from where its row says", async () => {
    for (let i = 0; i < 6; i++) expect((await push(s, "rr")).status).toBe(200);
    expect(await narsPerBackend(s, "rr")).toEqual(new Map([["a", 3], ["b", 3]]));
    // least-used: "a" holds 3 NARs (b too); pushes of different sizes keep the two within one NAR.
    // Usage is reread every 200 ms here, overlapping the pushes' commits at any point: each NAR is
    // still counted once (pool.ts; storage-pool-usage.test.ts has the orderings one by one).
    for (const size of [10_000, 30_000, 5_000, 20_000, 15_000, 25_000]) expect((await push(s, "lu", size)).status).toBe(200);
    const bytes = await s.server.ctx.db.kysely.selectFrom("nar").select(["backend", (eb) => eb.fn.sum<number>("file_size").as("n")]).groupBy("backend").execute();
    const [x, y] = bytes.map((r) => Number(r.n));
    expect(Math.abs((x as number) - (y as number))).toBeLessThanOrEqual(30_100);
    expect((await storedKeys(s, "a")).length + (await storedKeys(s, "b")).length).toBe(12);
    expect(await allProblems(s)).toEqual([]);
  });

  it("in-order fills the first backend to its capacity (counted from the database), then the next; 507 when none has room", async () => {
    let last = { status: 200, body: "" };
    for (let i = 0; i < 40 && last.status === 200; i++) last = await push(s, "io");
    expect(last.status).toBe(507);
    expect(last.body).toMatch(/no room|storage/i);
    const used = await s.server.ctx.db.kysely.selectFrom("nar").select(["backend", (eb) => eb.fn.sum<number>("file_size").as("n")]).groupBy("backend").execute();
    const byName = new Map(used.map((r) => [r.backend, Number(r.n)]));
    expect(byName.get("a")).toBeLessThanOrEqual(CAP_A);
    expect(byName.get("a")).toBeGreaterThan(CAP_A - NAR_BYTES - 200);
    expect(byName.get("b")).toBeLessThanOrEqual(CAP_B);
    expect(byName.get("b")).toBeGreaterThan(CAP_B - NAR_BYTES - 200);
    const metrics = await (await fetch(`${s.server.url}/metrics`)).text();
    expect(metrics).toMatch(/larder_storage_backend_skipped_total\{backend="a",reason="full"\} [1-9]/);
    expect(await allProblems(s)).toEqual([]);
  });

  it("drains a backend while clients pull every path continuously: nothing unreadable, old copies kept until retire-after", async () => {
    const before = await storedKeys(s, "a");
    expect(before.length).toBeGreaterThan(0);
    // Room on "b" for what "a" holds: the drain moves by the server's placement (in-order, so to "b").
    await s.server.close();
    const roomy = parseConfig(s.toml.replace(/capacity = "1 MB"/, `capacity = "20 MB"`), {});
    s.server = await startServer({ ...roomy, listen: { host: "127.0.0.1", port: 0 } }, { log: silent, accessFlushMs: 200, storageRefreshMs: 200 });
    s.config = roomy;
    let pulling = true;
    const seen: string[] = [];
    let pulls = 0;
    const all = [...s.pushed].flatMap(([cache, paths]) => paths.map((p) => ({ cache, p })));
    const puller = async () => {
      while (pulling) {
        const { cache, p } = all[Math.floor(Math.random() * all.length)] as { cache: string; p: Pushed };
        const x = await problem(s, cache, p);
        pulls++;
        if (x) seen.push(x);
      }
    };
    const pullers = Array.from({ length: 4 }, puller);
    const out: string[] = [];
    const code = await storageDrain(s.config, "a", { dryRun: false, undo: false, waitMs: 500 }, (l) => out.push(l));
    pulling = false;
    await Promise.all(pullers);
    expect(code, out.join("\n")).toBe(0);
    expect(seen).toEqual([]);
    expect(pulls).toBeGreaterThan(20);
    expect(await narsPerBackend(s)).toEqual(new Map([["b", all.length]]));
    // New pushes skip the draining backend.
    expect((await push(s, "io")).status).toBe(200);
    expect((await narsPerBackend(s)).get("a")).toBeUndefined();
    // GC now leaves the old copies (a presigned URL handed out a moment ago may still be used) ...
    const gc = (now: number) => collectGarbage({ db: s.server.ctx.db, pool: s.server.ctx.pool, gc: s.config.gc, log: silent }, now);
    await gc(Date.now());
    expect((await storedKeys(s, "a")).sort()).toEqual(before.sort());
    // ... and deletes them once storage.retire-after has passed.
    await gc(Date.now() + s.config.storageSetup.retireAfterSeconds * 1000 + 1000);
    expect(await storedKeys(s, "a")).toEqual([]);
    expect(await allProblems(s)).toEqual([]);
  });
});

describe("a backend that fails", () => {
  it("is skipped for new NARs (local+S3 with s3rver stopped; local+local with its directory gone), and health names it", async () => {
    for (const mix of ["local+s3", "local+local"] as const) {
      const s = await start(mix, mix === "local+s3" ? "postgres" : "sqlite");
      try {
        for (let i = 0; i < 4; i++) expect((await push(s, "rr", 10_000)).status).toBe(200);
        const onB = (await narsPerBackend(s)).get("b");
        expect(onB).toBe(2);
        if (mix === "local+s3") await s.s3?.stop();
        else {
          await rename(join(s.dir.path, "b"), join(s.dir.path, "b.away"));
          await writeFile(join(s.dir.path, "b"), "not a directory");
        }
        for (let i = 0; i < 6; i++) {
          const r = await push(s, "rr", 10_000);
          expect(r.status, r.body).toBe(200);
        }
        expect((await narsPerBackend(s)).get("b")).toBe(2);
        const health = await fetch(`${s.server.url}/_api/v1/health`);
        expect(health.status).toBe(200);
        expect(((await health.json()) as { storage: string }).storage).toBe("degraded: b unavailable");
        const metrics = await (await fetch(`${s.server.url}/metrics`)).text();
        expect(metrics).toMatch(/larder_storage_backend_skipped_total\{backend="b",reason="failing"\} [1-9]/);
        // What "b" holds cannot be read now: a 5xx the client retries, never a wrong answer.
        const onFailed = (s.pushed.get("rr") ?? []).slice(0, 4);
        const statuses = await Promise.all(onFailed.map((p) => problem(s, "rr", p)));
        expect(statuses.filter((x) => x !== undefined)).toHaveLength(2);
        for (const x of statuses.filter((x) => x !== undefined)) expect(x, x).toMatch(/NAR 50[23]/);
        if (mix === "local+local") {
          await rm(join(s.dir.path, "b"));
          await rename(join(s.dir.path, "b.away"), join(s.dir.path, "b"));
          expect(await allProblems(s)).toEqual([]);
        }
      } finally {
        await s.stop();
      }
    }
  });
});

describe("a backend whose disk fills up", () => {
  it("takes NARs until the disk is full, then the write goes to the next backend and nothing partial is left", async () => {
    let s: Setup;
    try {
      s = await start("local+local", "sqlite", { tmpfsA: "300k" });
    } catch (e) {
      if ((e as Error).message === "no tmpfs") return;
      throw e;
    }
    try {
      for (let i = 0; i < 12; i++) {
        const r = await push(s, "io");
        expect(r.status, r.body).toBe(200);
      }
      const per = await narsPerBackend(s);
      expect(per.get("a")).toBeGreaterThan(0);
      expect(per.get("b")).toBeGreaterThan(0);
      const metrics = await (await fetch(`${s.server.url}/metrics`)).text();
      expect(metrics).toMatch(/larder_storage_backend_skipped_total\{backend="a",reason="write-failed"\} [1-9]/);
      // The failed write left no temporary file on the full disk, and no journal entry.
      expect(await readdir(join(s.dir.path, "a", ".tmp"))).toEqual([]);
      expect(await s.server.ctx.db.kysely.selectFrom("storage_journal").selectAll().execute()).toEqual([]);
      expect(await allProblems(s)).toEqual([]);
    } finally {
      await s.stop();
    }
  });
});

describe("moving NARs, killed and run again", () => {
  it("survives kill -9 after a verified copy and after a switch; a rerun finishes and GC removes the orphan copy", async () => {
    const s = await start("local+local", "sqlite");
    try {
      for (let i = 0; i < 6; i++) expect((await push(s, "rr")).status).toBe(200);
      const file = join(s.dir.path, "server.toml");
      await writeFile(file, s.toml);
      for (const at of ["copied:2", "switched:2"]) {
        const r = await runNode(LARDERD_MAIN, ["storage", "drain", "b", "--config", file, "--wait", "0s"], { LARDER_TEST_MOVE_KILL_AT: at });
        expect(r.signal ?? r.code, r.stderr).toBe("SIGKILL");
        expect(await allProblems(s)).toEqual([]);
      }
      const done = await runNode(LARDERD_MAIN, ["storage", "drain", "b", "--config", file, "--wait", "0s"], {});
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toMatch(/"b" holds no objects/);
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 6]]));
      expect(await allProblems(s)).toEqual([]);
      // The copy made before the first kill was never switched to: GC deletes it after the grace period.
      const gc = (now: number) => collectGarbage({ db: s.server.ctx.db, pool: s.server.ctx.pool, gc: s.config.gc, log: silent }, now);
      await gc(Date.now() + (s.config.gc.graceSeconds + s.config.storageSetup.retireAfterSeconds) * 1000 + 1000);
      expect((await storedKeys(s, "a")).length).toBe(6);
      expect(await storedKeys(s, "b")).toEqual([]);
      expect(await allProblems(s)).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it("rebalance moves NARs to the server's placement (in-order: onto \"a\"); --dry-run moves nothing; a second run has nothing to do", async () => {
    const s = await start("local+local", "sqlite");
    try {
      // The "rr" cache spreads its NARs over both backends; the server's own placement (in-order) wants them on "a".
      for (let i = 0; i < 6; i++) expect((await push(s, "rr")).status).toBe(200);
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 3], ["b", 3]]));
      const file = join(s.dir.path, "server.toml");
      await writeFile(file, s.toml);
      const dry = await runNode(LARDERD_MAIN, ["storage", "rebalance", "--dry-run", "--config", file], {});
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(/b -> a/);
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 3], ["b", 3]]));
      const run = await runNode(LARDERD_MAIN, ["storage", "rebalance", "--config", file], {});
      expect(run.code, run.stderr).toBe(0);
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 6]]));
      expect(await allProblems(s)).toEqual([]);
      const again = await runNode(LARDERD_MAIN, ["storage", "rebalance", "--config", file], {});
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).not.toMatch(/b -> a/);
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 6]]));
      expect(await allProblems(s)).toEqual([]);
    } finally {
      await s.stop();
    }
  });

  it("refuses to start when the database names a backend the config lacks, until it is renamed explicitly", async () => {
    const s = await start("local+local", "sqlite");
    try {
      for (let i = 0; i < 2; i++) expect((await push(s, "rr")).status).toBe(200);
      await s.server.close();
      const renamed = parseConfig(s.toml.replace('name = "b"', 'name = "bulk"'), {});
      await expect(startServer(renamed, { log: silent })).rejects.toThrow(/"b", which the config does not name.*rename-backend b NEW/);
      const out: string[] = [];
      expect(await storageRenameBackend(renamed, "b", "bulk", { dryRun: true }, (l) => out.push(l))).toBe(0);
      await expect(startServer(renamed, { log: silent })).rejects.toThrow(/rename-backend/);
      expect(await storageRenameBackend(renamed, "b", "bulk", { dryRun: false }, (l) => out.push(l))).toBe(0);
      s.server = await startServer(renamed, { log: silent });
      expect(await narsPerBackend(s)).toEqual(new Map([["a", 1], ["bulk", 1]]));
      expect(await allProblems(s)).toEqual([]);
    } finally {
      await s.stop();
    }
  });
});

