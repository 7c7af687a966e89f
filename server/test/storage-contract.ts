// One behavioural contract for every Storage backend; storage-local.test.ts and storage-s3.test.ts run it.
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import * as v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StorageError, StorageNotFoundError, type Storage } from "../src/storage/types.ts";
import { storeFile } from "../src/storage/file.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

export interface StorageFixture {
  storage: Storage;
  cleanup(): Promise<void>;
}

export interface StorageContractOptions {
  /** Whether presignGet must produce a URL (S3) or must return null (local). */
  presigns: boolean;
  /**
   * False for emulators that write objects in place (s3rver streams straight into the final file), where two
   * racing PUTs of different bodies can interleave. Real S3 and the local backend replace objects atomically.
   */
  atomicOverwrite?: boolean;
}

const MiB = 1024 * 1024;
const BLOCK = randomBytes(MiB);

/**
 * `size` bytes made on the fly in 256 KiB chunks; the same (size, seed) always gives the same bytes, so the
 * expected digest can be computed by generating the stream a second time instead of keeping the data around.
 * Chunks are views into one random block at shifting offsets: allocating nothing keeps the memory test about
 * the backend rather than about when the garbage collector frees the generator's buffers.
 */
export function generatedStream(size: number, seed = 0): Readable {
  const chunkSize = 256 * 1024;
  const span = BLOCK.length - chunkSize;
  return Readable.from(
    (function* () {
      for (let offset = 0, n = 0; offset < size; offset += chunkSize, n++) {
        const start = (n * 7919 + seed * 104_729) % span;
        yield BLOCK.subarray(start, start + Math.min(chunkSize, size - offset));
      }
    })(),
    { objectMode: false },
  );
}

export async function digest(stream: AsyncIterable<Buffer | Uint8Array | string>): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    hash.update(buf);
    size += buf.length;
  }
  return { sha256: hash.digest("hex"), size };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

const bodyOf = (data: Buffer | string): Readable => Readable.from([Buffer.from(data)], { objectMode: false });

/** Yields `before` bytes, then fails the way a dropped client connection does. */
function failingStream(before: number): Readable {
  const source = generatedStream(before);
  return Readable.from(
    (async function* () {
      yield* source;
      await sleep(5);
      throw new Error("client went away");
    })(),
    { objectMode: false },
  );
}

async function keysOf(storage: Storage, prefix?: string): Promise<Array<{ key: string; size: number }>> {
  const out: Array<{ key: string; size: number }> = [];
  for await (const entry of storage.list(prefix)) out.push(entry);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

// A collector we can call: V8 lets tens of MiB of dead network and stream chunks pile up before it collects,
// so only memory measured right after a collection says what a backend really holds on to.
v8.setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const liveBytes = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/**
 * Runs `work`, which calls `checkpoint()` every few MiB it moves. Reports the largest growth of live memory
 * (heap + buffers right after a forced collection) seen at a checkpoint, and the peak RSS growth sampled
 * every 10 ms, which also counts garbage not collected yet.
 */
async function memoryGrowth(work: (checkpoint: () => void) => Promise<void>): Promise<{ live: number; rss: number }> {
  collectGarbage();
  const baseLive = liveBytes();
  const baseRss = process.memoryUsage.rss();
  let live = 0;
  let rss = 0;
  const timer = setInterval(() => {
    rss = Math.max(rss, process.memoryUsage.rss() - baseRss);
  }, 10);
  try {
    await work(() => {
      collectGarbage();
      live = Math.max(live, liveBytes() - baseLive);
    });
  } finally {
    clearInterval(timer);
  }
  return { live, rss: Math.max(rss, process.memoryUsage.rss() - baseRss) };
}

/** Passes `source` through, calling `checkpoint` after every `every` bytes. */
async function* withCheckpoints<T extends { length: number }>(
  source: AsyncIterable<T>,
  every: number,
  checkpoint: () => void,
): AsyncGenerator<T> {
  let since = 0;
  for await (const chunk of source) {
    yield chunk;
    since += chunk.length;
    if (since >= every) {
      since = 0;
      checkpoint();
    }
  }
}

export function describeStorageContract(
  name: string,
  makeStorage: () => Promise<StorageFixture>,
  options: StorageContractOptions,
): void {
  describe(`storage contract: ${name}`, () => {
    let fixture: StorageFixture | undefined;
    let storage: Storage;
    let namespace = 0;
    // Each test works under its own top-level directory, so one backend instance serves the whole file.
    const ns = (): string => `t${namespace++}-${randomBytes(3).toString("hex")}`;

    // Source files for putFile(), as an ingest spools them.
    let files: TempDir | undefined;
    const sourceFile = async (data: Buffer): Promise<string> => {
      const file = join(files!.path, `${randomBytes(6).toString("hex")}.tmp`);
      await writeFile(file, data, { mode: 0o600 });
      return file;
    };
    /** What is at `file` now, if anything. */
    const contentOf = (file: string): Promise<Buffer | null> => readFile(file).catch(() => null);

    beforeAll(async () => {
      fixture = await makeStorage();
      storage = fixture.storage;
      files = await makeTempDir("storage-files");
    });
    afterAll(async () => {
      await fixture?.cleanup();
      await files?.cleanup();
    });

    it("check() succeeds on a usable backend", async () => {
      await expect(storage.check()).resolves.toBeUndefined();
    });

    it("round-trips a small object and reports its size", async () => {
      const key = `${ns()}/nar/0a/0a1b2c.nar.zst`;
      const data = randomBytes(1234);
      await expect(storage.put(key, bodyOf(data))).resolves.toEqual({ size: 1234 });
      expect((await readAll(await storage.get(key))).equals(data)).toBe(true);
      expect(await storage.head(key)).toEqual({ size: 1234 });
    });

    it("stores an empty object", async () => {
      const key = `${ns()}/empty`;
      await expect(storage.put(key, Readable.from([], { objectMode: false }))).resolves.toEqual({ size: 0 });
      expect(await storage.head(key)).toEqual({ size: 0 });
      expect((await readAll(await storage.get(key))).length).toBe(0);
    });

    it("streams a ~20 MiB body in and out intact", async () => {
      const key = `${ns()}/big.nar`;
      const size = 20 * MiB + 12345;
      const expected = await digest(generatedStream(size, 1));
      await expect(storage.put(key, generatedStream(size, 1))).resolves.toEqual({ size });
      expect(await storage.head(key)).toEqual({ size });
      expect(await digest(await storage.get(key))).toEqual(expected);
    });

    it("overwrites an existing key", async () => {
      const key = `${ns()}/obj`;
      await storage.put(key, bodyOf("first version"));
      await storage.put(key, bodyOf("second, longer version"));
      expect((await readAll(await storage.get(key))).toString()).toBe("second, longer version");
      expect(await storage.head(key)).toEqual({ size: 22 });
    });

    it("putFile() stores a whole file (small, empty, larger than an S3 part) and is unaffected by what later happens to it", async () => {
      expect(storage.putFile, "both backends take files").toBeTypeOf("function");
      for (const size of [1234, 0, 9 * MiB + 3]) {
        const key = `${ns()}/nar/0a/file-${size}.nar.zst`;
        const data = randomBytes(size);
        const file = await sourceFile(data);
        await expect(storage.putFile!(key, file)).resolves.toEqual({ size });
        // The backend may have taken the file, but never left something else in its place.
        const left = await contentOf(file);
        if (left !== null) expect(left.equals(data)).toBe(true);
        // The caller reuses or removes the path afterwards; the object must not change with it.
        await writeFile(file, "reused by the next upload");
        await writeFile(file, "");
        expect(await storage.head(key)).toEqual({ size });
        expect((await readAll(await storage.get(key))).equals(data)).toBe(true);
      }
    });

    it("putFile() overwrites an existing key", async () => {
      const key = `${ns()}/obj`;
      await storage.put(key, bodyOf("first version"));
      await storage.putFile!(key, await sourceFile(Buffer.from("second, longer version")));
      expect((await readAll(await storage.get(key))).toString()).toBe("second, longer version");
    });

    it("putFile() of a missing file fails with StorageError and stores nothing", async () => {
      const key = `${ns()}/nar/gone.nar`;
      await expect(storage.putFile!(key, join(files!.path, "never-written.tmp"))).rejects.toBeInstanceOf(StorageError);
      expect(await storage.head(key)).toBeNull();
    });

    it("putFile() to an invalid key fails with StorageError and leaves the file where it was", async () => {
      const data = randomBytes(100);
      const file = await sourceFile(data);
      await expect(storage.putFile!("../escape", file)).rejects.toBeInstanceOf(StorageError);
      expect((await contentOf(file))?.equals(data)).toBe(true);
    });

    it("concurrent putFile() of the same key from different files leaves one whole object", async () => {
      const key = `${ns()}/nar/raced-file.nar`;
      const data = randomBytes(3 * MiB + 5);
      const sources = await Promise.all([sourceFile(data), sourceFile(data), sourceFile(data)]);
      const results = await Promise.all(sources.map((f) => storage.putFile!(key, f)));
      expect(results).toEqual([{ size: data.length }, { size: data.length }, { size: data.length }]);
      expect((await readAll(await storage.get(key))).equals(data)).toBe(true);
      expect(await keysOf(storage, key)).toEqual([{ key, size: data.length }]);
    });

    it("storeFile() streams the file through put() for a backend without putFile()", async () => {
      const key = `${ns()}/nar/streamed.nar`;
      const data = randomBytes(200_000);
      const file = await sourceFile(data);
      const { putFile: _taken, ...withoutPutFile } = storage;
      await expect(storeFile(withoutPutFile, key, file)).resolves.toEqual({ size: data.length });
      expect((await readAll(await storage.get(key))).equals(data)).toBe(true);
      // Streaming copies: the file is still the caller's.
      expect((await stat(file)).size).toBe(data.length);
    });

    it("storeFile() closes the file when put() refuses the key before reading it", async () => {
      const file = await sourceFile(randomBytes(1000));
      const { putFile: _taken, ...withoutPutFile } = storage;
      await expect(storeFile(withoutPutFile, "../escape", file)).rejects.toBeInstanceOf(StorageError);
      await expect(storage.putFile!("../escape", file)).rejects.toBeInstanceOf(StorageError);
      // Descriptors close asynchronously after the stream is destroyed.
      await sleep(50);
      const open: string[] = [];
      for (const fd of await readdir("/proc/self/fd")) open.push(await readlink(`/proc/self/fd/${fd}`).catch(() => ""));
      expect(open).not.toContain(file);
    });

    it("head() is null for a missing key and get() throws StorageNotFoundError", async () => {
      const key = `${ns()}/nar/ff/missing.nar`;
      expect(await storage.head(key)).toBeNull();
      await expect(storage.get(key)).rejects.toBeInstanceOf(StorageNotFoundError);
      await expect(storage.get(key, { start: 0, end: 9 })).rejects.toBeInstanceOf(StorageNotFoundError);
    });

    it("serves byte ranges (inclusive end, open end, last byte, end past the object)", async () => {
      const key = `${ns()}/ranged`;
      const data = Buffer.from("0123456789abcdefghij");
      await storage.put(key, bodyOf(data));
      const range = async (start: number, end?: number): Promise<string> =>
        (await readAll(await storage.get(key, end === undefined ? { start } : { start, end }))).toString();
      expect(await range(0)).toBe(data.toString());
      expect(await range(15)).toBe("fghij");
      expect(await range(2, 5)).toBe("2345");
      expect(await range(0, 0)).toBe("0");
      expect(await range(19, 19)).toBe("j");
      expect(await range(19)).toBe("j");
      expect(await range(10, 1000)).toBe("abcdefghij");
    });

    it("rejects a range that starts past the end, and malformed ranges", async () => {
      const key = `${ns()}/short`;
      await storage.put(key, bodyOf("tiny"));
      await expect(storage.get(key, { start: 4 })).rejects.toBeInstanceOf(StorageError);
      await expect(storage.get(key, { start: 3, end: 1 })).rejects.toBeInstanceOf(StorageError);
      await expect(storage.get(key, { start: -1 })).rejects.toBeInstanceOf(StorageError);
    });

    it("ranges work inside a multi-megabyte object", async () => {
      const key = `${ns()}/big-ranged`;
      const size = 9 * MiB + 3;
      await storage.put(key, generatedStream(size, 2));
      const whole = await readAll(await storage.get(key));
      const start = 8 * MiB - 17;
      const part = await readAll(await storage.get(key, { start, end: size - 1 }));
      expect(part.equals(whole.subarray(start))).toBe(true);
    });

    it("delete() removes an object and succeeds again when it is already gone", async () => {
      const key = `${ns()}/doomed`;
      await storage.put(key, bodyOf("bye"));
      await storage.delete(key);
      expect(await storage.head(key)).toBeNull();
      await expect(storage.get(key)).rejects.toBeInstanceOf(StorageNotFoundError);
      await expect(storage.delete(key)).resolves.toBeUndefined();
      await expect(storage.delete(`${ns()}/never/existed`)).resolves.toBeUndefined();
    });

    it("a key that is only a prefix of other keys is not an object", async () => {
      const root = ns();
      await storage.put(`${root}/dir/file`, bodyOf("inside"));
      expect(await storage.head(`${root}/dir`)).toBeNull();
      await expect(storage.get(`${root}/dir`)).rejects.toBeInstanceOf(StorageNotFoundError);
      await expect(storage.get(`${root}/dir`, { start: 0 })).rejects.toBeInstanceOf(StorageNotFoundError);
      await expect(storage.delete(`${root}/dir`)).resolves.toBeUndefined();
      expect(await keysOf(storage, `${root}/`)).toEqual([{ key: `${root}/dir/file`, size: 6 }]);
    });

    it("lists keys with sizes under a prefix", async () => {
      const root = ns();
      await storage.put(`${root}/a/b/1`, bodyOf("1"));
      await storage.put(`${root}/a/b/22`, bodyOf("22"));
      await storage.put(`${root}/a/c/333`, bodyOf("333"));
      await storage.put(`${root}/ab/4444`, bodyOf("4444"));
      expect(await keysOf(storage, `${root}/a/b/`)).toEqual([
        { key: `${root}/a/b/1`, size: 1 },
        { key: `${root}/a/b/22`, size: 2 },
      ]);
      expect((await keysOf(storage, `${root}/a/`)).map((e) => e.key)).toEqual([
        `${root}/a/b/1`,
        `${root}/a/b/22`,
        `${root}/a/c/333`,
      ]);
      // A prefix is a string prefix, not a directory: "a" also matches "ab/…".
      expect((await keysOf(storage, `${root}/a`)).map((e) => e.key)).toEqual([
        `${root}/a/b/1`,
        `${root}/a/b/22`,
        `${root}/a/c/333`,
        `${root}/ab/4444`,
      ]);
      expect((await keysOf(storage, `${root}/a/b/2`)).map((e) => e.key)).toEqual([`${root}/a/b/22`]);
      expect(await keysOf(storage, `${root}/nothing/`)).toEqual([]);
      const all = (await keysOf(storage)).map((e) => e.key).filter((k) => k.startsWith(`${root}/`));
      expect(all).toHaveLength(4);
    });

    it("an object is invisible until its body has fully arrived", async () => {
      const key = `${ns()}/slow`;
      const body = new PassThrough();
      const done = storage.put(key, body);
      body.write(randomBytes(64 * 1024));
      await sleep(100);
      expect(await storage.head(key)).toBeNull();
      expect(await keysOf(storage, key)).toEqual([]);
      body.end(randomBytes(1000));
      await expect(done).resolves.toEqual({ size: 64 * 1024 + 1000 });
      expect(await storage.head(key)).toEqual({ size: 64 * 1024 + 1000 });
    });

    for (const [label, before] of [
      ["early", 100 * 1024],
      ["after several MiB (S3: multipart already started)", 20 * MiB],
    ] as const) {
      it(`a body that errors ${label} rethrows its error and leaves nothing behind`, async () => {
        const root = ns();
        const key = `${root}/nar/broken.nar`;
        await expect(storage.put(key, failingStream(before))).rejects.toThrow("client went away");
        expect(await storage.head(key)).toBeNull();
        await expect(storage.get(key)).rejects.toBeInstanceOf(StorageNotFoundError);
        expect(await keysOf(storage, `${root}/`)).toEqual([]);
      });
    }

    it("a failed overwrite keeps the previous object whole", async () => {
      const key = `${ns()}/kept`;
      await storage.put(key, bodyOf("the good copy"));
      await expect(storage.put(key, failingStream(300 * 1024))).rejects.toThrow("client went away");
      expect((await readAll(await storage.get(key))).toString()).toBe("the good copy");
    });

    it("concurrent puts of the same key both succeed and leave one whole object", async () => {
      const key = `${ns()}/nar/raced.nar`;
      const size = 3 * MiB + 5;
      const expected = await digest(generatedStream(size, 3));
      const results = await Promise.all([
        storage.put(key, generatedStream(size, 3)),
        storage.put(key, generatedStream(size, 3)),
        storage.put(key, generatedStream(size, 3)),
      ]);
      expect(results).toEqual([{ size }, { size }, { size }]);
      expect(await digest(await storage.get(key))).toEqual(expected);
      expect(await keysOf(storage, key)).toEqual([{ key, size }]);
    });

    // Backends that write in place (s3rver) cannot promise this; the test is not registered for them.
    (options.atomicOverwrite === false ? () => {} : it)("concurrent puts of different bodies leave exactly one of them, whole", async () => {
      const key = `${ns()}/either`;
      const a = await digest(generatedStream(MiB + 1, 4));
      const b = await digest(generatedStream(2 * MiB + 1, 5));
      await Promise.all([storage.put(key, generatedStream(MiB + 1, 4)), storage.put(key, generatedStream(2 * MiB + 1, 5))]);
      expect([a, b]).toContainEqual(await digest(await storage.get(key)));
    });

    it("rejects invalid keys on every operation", async () => {
      const bad = [
        "",
        "/abs/path",
        "a//b",
        "a/",
        "../escape",
        "a/../../b",
        "a/./b",
        ".tmp/x",
        "nar/.hidden",
        "Upper/case",
        "sp ace",
        "back\\slash",
        "nul\u0000byte",
        "é",
      ];
      for (const key of bad) {
        await expect(storage.put(key, bodyOf("x")), key).rejects.toBeInstanceOf(StorageError);
        await expect(storage.get(key), key).rejects.toBeInstanceOf(StorageError);
        await expect(storage.head(key), key).rejects.toBeInstanceOf(StorageError);
        await expect(storage.delete(key), key).rejects.toBeInstanceOf(StorageError);
        await expect(storage.presignGet(key, 60), key).rejects.toBeInstanceOf(StorageError);
      }
      await expect(keysOf(storage, "../")).rejects.toBeInstanceOf(StorageError);
    });

    if (options.presigns) {
      it("presignGet() returns a URL a plain HTTP client can download the object from", async () => {
        const key = `${ns()}/nar/presigned.nar.zst`;
        const data = randomBytes(100_000);
        await storage.put(key, bodyOf(data));
        const url = await storage.presignGet(key, 300);
        expect(url).toMatch(/^https?:\/\//);
        const res = await fetch(url!);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
        const signed = new URL(url!);
        expect(signed.searchParams.get("X-Amz-Expires")).toBe("300");
        expect(signed.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
      });

      it("presignPut() returns a URL a plain HTTP client can store an object through, with Content-MD5 signed", async () => {
        const key = `${ns()}/staging/part-1`;
        const data = randomBytes(70_000);
        const md5 = createHash("md5").update(data).digest("base64");
        const url = await storage.presignPut!(key, 300, md5);
        const signed = new URL(url);
        expect(signed.searchParams.get("X-Amz-SignedHeaders")?.split(";")).toContain("content-md5");
        const res = await fetch(url, { method: "PUT", body: data, headers: { "content-md5": md5 } });
        expect(res.status).toBe(200);
        expect(res.headers.get("etag")).toBe(`"${createHash("md5").update(data).digest("hex")}"`);
        expect((await storage.head(key))?.size).toBe(data.length);
      });
    } else {
      it("presignGet() returns null (no direct URL for this backend)", async () => {
        const key = `${ns()}/local`;
        await storage.put(key, bodyOf("x"));
        expect(await storage.presignGet(key, 300)).toBeNull();
        expect(storage.presignPut).toBeUndefined();
      });
    }

    it("a 200 MiB streamed put and get hold under 64 MiB of live memory", async () => {
      const key = `${ns()}/huge.nar`;
      const size = 200 * MiB;
      const every = 16 * MiB;
      const put = await memoryGrowth(async (checkpoint) => {
        const body = Readable.from(withCheckpoints(generatedStream(size, 6), every, checkpoint), { objectMode: false });
        await expect(storage.put(key, body)).resolves.toEqual({ size });
      });
      let got = { sha256: "", size: 0 };
      const get = await memoryGrowth(async (checkpoint) => {
        got = await digest(withCheckpoints(await storage.get(key), every, checkpoint));
      });
      expect(got).toEqual(await digest(generatedStream(size, 6)));
      expect(put.live, "live memory growth during put").toBeLessThan(64 * MiB);
      expect(get.live, "live memory growth during get").toBeLessThan(64 * MiB);
      // Uncollected garbage rides on top of live memory; holding the object would still cost 200 MiB or more.
      expect(put.rss, "peak RSS growth during put").toBeLessThan(160 * MiB);
      expect(get.rss, "peak RSS growth during get").toBeLessThan(160 * MiB);
      await storage.delete(key);
    });
  });
}
