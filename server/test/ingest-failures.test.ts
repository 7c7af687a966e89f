/**
 * Uploads that fail for reasons that are not the client's bytes: a full disk (a real one, a tiny
 * tmpfs) is a 507 the client retries, counted as a storage error; a cache destroyed mid-upload is
 * a 404 NoSuchCache; either way nothing stays behind. Spool files of dead processes are swept at
 * start and by GC, and global dedup is not an oracle for what other caches hold.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdir, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Backend, type Larder } from "./support/larder.ts";
import { narOfFile } from "./support/nar.ts";
import { open, until } from "./support/socket.ts";
import { makeTempDir } from "./support/tmp.ts";
import { missing } from "./support/requirements.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { spoolFileName } from "../src/ingest/spool.ts";
import { runGcMode } from "../src/gc/loop.ts";

const nix32 = (b: Buffer) => encodeNixBase32(createHash("sha256").update(b).digest());
const hex = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A tmpfs of `size` at a fresh directory: a disk that really fills up. */
async function tinyDisk(size: string): Promise<{ path: string; cleanup(): Promise<void> } | undefined> {
  const dir = await makeTempDir("tinydisk");
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir.path]);
  if (r.status !== 0) {
    await dir.cleanup();
    missing(`cannot mount a tmpfs (${r.stderr.toString().trim()})`, "the disk-full tests need a real full file system");
    return undefined;
  }
  return {
    path: dir.path,
    async cleanup() {
      spawnSync("umount", [dir.path]);
      await dir.cleanup();
    },
  };
}

async function metric(l: Larder, line: string): Promise<number> {
  const text = await (await fetch(`${l.url}/metrics`)).text();
  const found = text.split("\n").find((x) => x.startsWith(line));
  return found === undefined ? 0 : Number(found.split(" ").pop());
}

async function storedCount(l: Larder): Promise<number> {
  let n = 0;
  for await (const _ of l.server.ctx.storage.list("nar/")) n++;
  return n;
}

/** attic's upload info for a single-file store path with this NAR. */
function atticInfo(cache: string, nar: Buffer): { header: string; hash: string } {
  const hash = nix32(nar).slice(0, 32);
  return {
    hash,
    header: JSON.stringify({
      cache,
      store_path_hash: hash,
      store_path: `/nix/store/${hash}-blob`,
      references: [],
      system: null,
      deriver: null,
      sigs: [],
      ca: null,
      nar_hash: `sha256:${hex(nar)}`,
      nar_size: nar.length,
    }),
  };
}

describe.each(BACKENDS)("ingest failures on %s", (backend: Backend) => {
  let l: Larder;
  let disk: Awaited<ReturnType<typeof tinyDisk>>;
  let token: string;

  const putNar = (cache: string, body: Buffer, auth = token) =>
    fetch(`${l.url}/${cache}/nar/${nix32(body)}.nar`, { method: "PUT", body, headers: { authorization: `Bearer ${auth}` } });
  const uploadPath = (cache: string, nar: Buffer, auth = token) =>
    fetch(`${l.url}/_api/v1/upload-path`, {
      method: "PUT",
      body: nar,
      headers: { authorization: `Bearer ${auth}`, "x-attic-nar-info": atticInfo(cache, nar).header, "content-type": "application/octet-stream" },
    });

  async function nothingLeft(narsBefore: number, storedBefore: number): Promise<void> {
    expect(await readdir(l.config.spoolDir)).toEqual([]);
    expect(await storedCount(l)).toBe(storedBefore);
    const nars = await l.server.ctx.db.kysely.selectFrom("nar").select("id").execute();
    expect(nars.length).toBe(narsBefore);
    expect(await l.server.ctx.db.kysely.selectFrom("storage_journal").selectAll().execute()).toEqual([]);
  }

  beforeAll(async () => {
    disk = await tinyDisk("1m");
    l = await startLarder(backend, { ...(disk && { spoolDir: disk.path }) });
    await createTestCache(l, "c");
    token = await l.token({ pull: ["*"], push: ["*"], destroyCache: ["*"], createCache: ["*"] });
  });
  afterAll(async () => {
    await l?.stop();
    await disk?.cleanup();
  });

  it("answers a full spool disk with 507, counts a storage error, and keeps nothing", async () => {
    if (!disk) return;
    const narsBefore = (await l.server.ctx.db.kysely.selectFrom("nar").select("id").execute()).length;
    const storedBefore = await storedCount(l);
    const errorsBefore = await metric(l, 'larder_backend_errors_total{backend="storage"}');
    // Random bytes do not compress: 3 MiB cannot fit in a 1 MiB spool.
    const nar = narOfFile(randomBytes(3 * 1024 * 1024));
    for (const res of [await putNar("c", nar), await uploadPath("c", nar)]) {
      const body = (await res.json()) as { code: number; error: string; message: string };
      expect(res.status).toBe(507);
      expect(body.error).toBe("InsufficientStorage");
      expect(body.message).not.toMatch(/ENOSPC|spool|\//);
    }
    expect(await metric(l, 'larder_backend_errors_total{backend="storage"}')).toBe(errorsBefore + 2);
    await nothingLeft(narsBefore, storedBefore);
    // Small uploads, and everything once there is room again, still work.
    const small = narOfFile(randomBytes(200 * 1024));
    expect((await uploadPath("c", small)).status).toBe(200);
  });

  for (const protocol of ["nix", "attic"] as const) {
    it(`answers NoSuchCache when the cache is destroyed during a ${protocol} upload, and keeps nothing`, async () => {
      const name = `doomed-${protocol}`;
      await createTestCache(l, name);
      const narsBefore = (await l.server.ctx.db.kysely.selectFrom("nar").select("id").execute()).length;
      const storedBefore = await storedCount(l);
      const nar = narOfFile(randomBytes(600 * 1024));
      const c = await open(l.url);
      const host = `host: ${new URL(l.url).host}`;
      c.write(
        (protocol === "nix"
          ? [`PUT /${name}/nar/${nix32(nar)}.nar HTTP/1.1`, host, `authorization: Bearer ${token}`, `content-length: ${nar.length}`]
          : ["PUT /_api/v1/upload-path HTTP/1.1", host, `authorization: Bearer ${token}`, `x-attic-nar-info: ${atticInfo(name, nar).header}`, `content-length: ${nar.length}`]
        ).join("\r\n") + "\r\n\r\n",
      );
      c.write(nar.subarray(0, 400 * 1024));
      const destroyed = await fetch(`${l.url}/_api/v1/cache-config/${name}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
      expect(destroyed.status).toBe(200);
      c.write(nar.subarray(400 * 1024));
      await until("the answer", () => /\r\n\r\n\{.*\}/s.test(c.text()));
      expect(c.status(), c.text()).toBe(404);
      expect(c.text()).toMatch(/"error":"NoSuchCache"/);
      c.socket.destroy();
      await nothingLeft(narsBefore, storedBefore);
    });
  }

  it("answers a push of a NAR only a private cache holds exactly as a first upload", async () => {
    await createTestCache(l, "secret");
    await createTestCache(l, "mine");
    await createTestCache(l, "shared");
    const owner = await l.token({ push: ["secret"], pull: ["secret"] }, "owner");
    const stranger = await l.token({ push: ["mine"], pull: ["mine"] }, "stranger");
    const reader = await l.token({ push: ["shared"], pull: ["shared", "secret"] }, "reader");
    const nar = narOfFile(randomBytes(300 * 1024));
    const first = await uploadPath("secret", nar, owner);
    expect(first.status).toBe(200);
    const firstBody = await first.json();
    expect(firstBody).toMatchObject({ kind: "Uploaded" });
    // The stranger cannot read "secret": same answer as the owner's first upload, byte for byte.
    const blind = await uploadPath("mine", nar, stranger);
    expect(blind.status).toBe(200);
    expect(await blind.text()).toBe(JSON.stringify(firstBody));
    // Someone who can read "secret" learns nothing new from "Deduplicated".
    const seen = await uploadPath("shared", nar, reader);
    expect(await seen.json()).toMatchObject({ kind: "Deduplicated" });
    // Either way the NAR is stored once.
    const rows = await l.server.ctx.db.kysely.selectFrom("nar").select("id").where("nar_hash", "=", hex(nar)).execute();
    expect(rows).toHaveLength(1);
  });

  it("removes spool files of dead processes at start and in GC, and keeps live ones", async () => {
    if (!disk) return;
    const dead = spawnSync("true").pid as number;
    const ofPid = (pid: number) => spoolFileName().replace(`.${process.pid}.`, `.${pid}.`);
    const deadFile = ofPid(dead);
    const liveFile = ofPid(1); // pid 1 always runs: another larderd's upload in flight
    const oldForeign = "ingest-0123456789abcdef01234567.42.another_host.tmp";
    const freshForeign = "ingest-89abcdef0123456701234567.42.another_host.tmp";
    for (const f of [deadFile, liveFile, oldForeign, freshForeign]) await writeFile(join(l.config.spoolDir, f), "partial");
    const longAgo = (Date.now() - (l.config.gc.graceSeconds + 60) * 1000) / 1000;
    await utimes(join(l.config.spoolDir, oldForeign), longAgo, longAgo);
    await l.restart();
    expect((await readdir(l.config.spoolDir)).sort()).toEqual([freshForeign, liveFile].sort());

    // Killed again while the server runs: the next GC run sweeps it.
    await writeFile(join(l.config.spoolDir, deadFile), "partial");
    const out = process.stdout.write;
    process.stdout.write = () => true;
    try {
      expect(await runGcMode(l.config, true, async () => {})).toBe(0);
    } finally {
      process.stdout.write = out;
    }
    expect((await readdir(l.config.spoolDir)).sort()).toEqual([freshForeign, liveFile].sort());
    await rm(join(l.config.spoolDir, freshForeign));
    await rm(join(l.config.spoolDir, liveFile));
  });
});

// S3 has no full disk; local storage does.
describe("ingest failures on local storage", () => {
  it("answers a full storage disk with 507 and leaves no partial object", async () => {
    const storageDisk = await tinyDisk("1m");
    if (!storageDisk) return;
    const s = await startLarder("sqlite-local", { storageDir: join(storageDisk.path, "storage") });
    try {
      await createTestCache(s, "c");
      const t = await s.token({ push: ["c"], pull: ["c"] });
      const nar = narOfFile(randomBytes(3 * 1024 * 1024));
      const res = await fetch(`${s.url}/c/nar/${nix32(nar)}.nar`, { method: "PUT", body: nar, headers: { authorization: `Bearer ${t}` } });
      expect(res.status).toBe(507);
      expect(((await res.json()) as { error: string }).error).toBe("InsufficientStorage");
      expect(await readdir(join(storageDisk.path, "storage", ".tmp"))).toEqual([]);
      expect(await readdir(s.config.spoolDir)).toEqual([]);
      expect(await s.server.ctx.db.kysely.selectFrom("nar").selectAll().execute()).toEqual([]);
      expect(await s.server.ctx.db.kysely.selectFrom("storage_journal").selectAll().execute()).toEqual([]);
      expect(await metric(s, 'larder_backend_errors_total{backend="storage"}')).toBe(1);
    } finally {
      await s.stop();
      await storageDisk.cleanup();
    }
  });

});
