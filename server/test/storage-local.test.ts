import { statSync } from "node:fs";
import { mkdtemp, readdir, readFile, stat, utimes, writeFile, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createStorage, createLocalStorage, StorageError } from "../src/storage/index.ts";
import { describeStorageContract } from "./storage-contract.ts";
import { makeTempDir } from "./support/tmp.ts";
import { missing } from "./support/requirements.ts";

/** A writable directory on another filesystem than the temp directory, to make rename fail with EXDEV. */
function otherFilesystem(): string | null {
  const here = statSync(tmpdir()).dev;
  for (const dir of ["/dev/shm", "/run/shm"]) {
    try {
      if (statSync(dir).dev !== here) return dir;
    } catch {
      // Not on this machine.
    }
  }
  return null;
}
const crossDevice = otherFilesystem();

describeStorageContract(
  "local",
  async () => {
    const dir = await makeTempDir("storage-local");
    return { storage: await createStorage({ type: "local", path: dir.path }), cleanup: dir.cleanup };
  },
  { presigns: false },
);

describe("local storage specifics", () => {
  it("keeps objects at <path>/<key> and leaves no temp files after puts", async () => {
    const dir = await makeTempDir("storage-local");
    try {
      const storage = await createLocalStorage({ path: dir.path });
      await storage.put("nar/0a/0a1b.nar.zst", Readable.from([Buffer.from("abc")]));
      expect((await stat(path.join(dir.path, "nar", "0a", "0a1b.nar.zst"))).size).toBe(3);
      await expect(
        storage.put("nar/0a/broken.nar", Readable.from((async function* () { yield Buffer.from("x"); throw new Error("boom"); })())),
      ).rejects.toThrow("boom");
      expect(await readdir(path.join(dir.path, ".tmp"))).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });

  it("putFile() takes a file on the same filesystem by renaming it: no copy, no temp file, mode 0644", async () => {
    const dir = await makeTempDir("storage-local");
    try {
      const storage = await createLocalStorage({ path: path.join(dir.path, "storage") });
      const spool = path.join(dir.path, "spool");
      await mkdir(spool);
      const source = path.join(spool, "ingest.tmp");
      await writeFile(source, "a small NAR", { mode: 0o600 });
      const inode = (await stat(source)).ino;
      await expect(storage.putFile!("nar/0a/0a1b.nar.zst", source)).resolves.toEqual({ size: 11 });
      const stored = await stat(path.join(dir.path, "storage", "nar", "0a", "0a1b.nar.zst"));
      expect(stored.ino).toBe(inode);
      expect(stored.mode & 0o777).toBe(0o644);
      expect(await readdir(spool)).toEqual([]);
      expect(await readdir(path.join(dir.path, "storage", ".tmp"))).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });

  it.skipIf(crossDevice === null && !missing("no directory on another filesystem (/dev/shm)", "putFile's copy fallback"))(
    "putFile() copies a file from another filesystem, leaving it to the caller",
    async () => {
      const dir = await makeTempDir("storage-local");
      const elsewhere = await mkdtemp(path.join(crossDevice!, "larder-exdev-"));
      try {
        const storage = await createLocalStorage({ path: dir.path });
        const source = path.join(elsewhere, "ingest.tmp");
        await writeFile(source, "bytes from tmpfs", { mode: 0o600 });
        await expect(storage.putFile!("nar/0b/0b1c.nar", source)).resolves.toEqual({ size: 16 });
        const file = path.join(dir.path, "nar", "0b", "0b1c.nar");
        expect(await readFile(file, "utf8")).toBe("bytes from tmpfs");
        expect((await stat(file)).mode & 0o777).toBe(0o644);
        expect(await readFile(source, "utf8")).toBe("bytes from tmpfs");
        expect(await readdir(path.join(dir.path, ".tmp"))).toEqual([]);
      } finally {
        await rm(elsewhere, { recursive: true, force: true });
        await dir.cleanup();
      }
    },
  );

  it("removes temp files older than an hour on startup and keeps younger ones", async () => {
    const dir = await makeTempDir("storage-local");
    try {
      await mkdir(path.join(dir.path, ".tmp"));
      const old = path.join(dir.path, ".tmp", "old.part");
      const young = path.join(dir.path, ".tmp", "young.part");
      await writeFile(old, "stale");
      await writeFile(young, "in flight");
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      await utimes(old, twoHoursAgo, twoHoursAgo);
      await createLocalStorage({ path: dir.path });
      expect(await readdir(path.join(dir.path, ".tmp"))).toEqual(["young.part"]);
    } finally {
      await dir.cleanup();
    }
  });

  it("check() fails once the directory is gone", async () => {
    const dir = await makeTempDir("storage-local");
    const storage = await createLocalStorage({ path: dir.path });
    await rm(dir.path, { recursive: true });
    await expect(storage.check()).rejects.toBeInstanceOf(StorageError);
  });

  it("list() does not show the temp directory or files placed outside the key alphabet", async () => {
    const dir = await makeTempDir("storage-local");
    try {
      const storage = await createLocalStorage({ path: dir.path });
      await writeFile(path.join(dir.path, ".tmp", "partial.part"), "x");
      await writeFile(path.join(dir.path, ".DS_Store"), "x");
      await storage.put("k", Readable.from([Buffer.from("v")]));
      const keys: string[] = [];
      for await (const e of storage.list()) keys.push(e.key);
      expect(keys).toEqual(["k"]);
    } finally {
      await dir.cleanup();
    }
  });
});
