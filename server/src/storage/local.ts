import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { closed } from "../util/closed.ts";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  StorageError,
  StorageNotFoundError,
  StorageRangeError,
  type ByteRange,
  type OpenedFile,
  type Storage,
  type StoredObject,
} from "./types.ts";
import { putFromFile } from "./file.ts";

const TMP_DIR = ".tmp";
const STALE_TMP_MS = 60 * 60 * 1000;

export interface LocalStorageOptions {
  path: string;
}

export async function createLocalStorage(opts: LocalStorageOptions): Promise<Storage> {
  const root = path.resolve(opts.path);
  const tmpDir = path.join(root, TMP_DIR);
  try {
    await fs.mkdir(tmpDir, { recursive: true });
  } catch (err) {
    throw wrap("create storage directory", root, err);
  }
  await removeStaleTempFiles(tmpDir);
  const fileOf = (key: string): string => path.join(root, ...key.split("/"));

  const openFile = async (key: string, range?: ByteRange): Promise<OpenedFile> => {
    assertValidKey(key);
    assertValidRange(key, range);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(fileOf(key), "r");
    } catch (err) {
      if (isMissing(err)) throw new StorageNotFoundError(`storage object ${key} not found`);
      throw wrap("get", key, err);
    }
    try {
      const stat = await handle.stat();
      // A key that names a directory (a prefix of other keys) is not an object, as on S3.
      if (!stat.isFile()) throw new StorageNotFoundError(`storage object ${key} not found`);
      const size = stat.size;
      if (range === undefined) return { handle, start: 0, end: size - 1 };
      if (range.start >= size) {
        throw new StorageRangeError(`range start ${range.start} is past the end of ${key} (${size} bytes)`);
      }
      return { handle, start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
    } catch (err) {
      await handle.close().catch(() => {});
      if (err instanceof StorageError || err instanceof StorageNotFoundError) throw err;
      throw wrap("get", key, err);
    }
  };

  const put = async (key: string, body: Readable): Promise<StoredObject> => {
    assertValidKey(key);
    const tmp = path.join(tmpDir, `${randomUUID()}.part`);
    // pipeline() reports the first error; remember the body's own so the caller gets it back unwrapped.
    let bodyError: unknown;
    const onBodyError = (err: unknown): void => {
      bodyError ??= err;
    };
    body.once("error", onBodyError);
    // flush: fsync before close, so the rename below never exposes a file whose data is still in flight.
    const out = createWriteStream(tmp, { flags: "wx", mode: 0o644, flush: true });
    try {
      await pipeline(body, out);
      const size = out.bytesWritten;
      await moveInto(root, tmp, fileOf(key));
      return { size };
    } catch (err) {
      await closed(out);
      await fs.rm(tmp, { force: true }).catch(() => {});
      if (bodyError !== undefined) throw bodyError;
      if (err instanceof StorageError) throw err;
      throw wrap("put", key, err);
    } finally {
      body.off("error", onBodyError);
    }
  };

  return {
    put,

    async putFile(key: string, source: string): Promise<StoredObject> {
      assertValidKey(key);
      let size: number;
      try {
        const handle = await fs.open(source, "r");
        try {
          const stat = await handle.stat();
          if (!stat.isFile()) throw new StorageError(`local storage: put ${key} failed: ${source} is not a regular file`);
          size = stat.size;
          // Objects are world-readable whoever made them (put creates them 0644); the writer's umask decided this mode.
          if ((stat.mode & 0o777) !== 0o644) await handle.chmod(0o644);
          // The data must be on disk before the name is: after a crash an object is whole or absent.
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (err) {
        if (err instanceof StorageError) throw err;
        throw wrap("put", key, err);
      }
      try {
        // Taking the file by name costs no copy and no second fsync of its bytes (a small NAR's commit was
        // mostly that copy; bench).
        await moveInto(root, source, fileOf(key));
        return { size };
      } catch (err) {
        // Another filesystem (or mount): copy it instead.
        if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw wrap("put", key, err);
      }
      try {
        return await putFromFile(put, key, source);
      } catch (err) {
        if (err instanceof StorageError) throw err;
        throw wrap("put", key, err);
      }
    },

    async get(key: string, range?: ByteRange): Promise<Readable> {
      const { handle, start, end } = await openFile(key, range);
      return range === undefined ? handle.createReadStream() : handle.createReadStream({ start, end });
    },

    openFile,

    async head(key: string): Promise<StoredObject | null> {
      assertValidKey(key);
      try {
        const stat = await fs.stat(fileOf(key));
        return stat.isFile() ? { size: stat.size } : null;
      } catch (err) {
        if (isMissing(err)) return null;
        throw wrap("head", key, err);
      }
    },

    async delete(key: string): Promise<void> {
      assertValidKey(key);
      try {
        await fs.unlink(fileOf(key));
      } catch (err) {
        // EISDIR: the key names a directory of other keys, so there is no object to delete.
        if (isMissing(err) || (err as NodeJS.ErrnoException).code === "EISDIR") return;
        throw wrap("delete", key, err);
      }
    },

    async presignGet(key: string): Promise<string | null> {
      assertValidKey(key);
      return null;
    },

    async *list(prefix = ""): AsyncIterable<{ key: string; size: number }> {
      assertValidPrefix(prefix);
      // Start at the deepest directory the prefix names completely, so a sweep of "nar/0a" reads one directory.
      const slash = prefix.lastIndexOf("/");
      const base = slash < 0 ? "" : prefix.slice(0, slash);
      yield* walk(root, base, prefix);
    },

    async check(): Promise<void> {
      try {
        await fs.access(tmpDir, fs.constants.R_OK | fs.constants.W_OK);
      } catch (err) {
        throw wrap("check", root, err);
      }
    },
  };
}

async function* walk(root: string, dirKey: string, prefix: string): AsyncGenerator<{ key: string; size: number }> {
  let entries;
  try {
    entries = await fs.readdir(dirKey === "" ? root : path.join(root, ...dirKey.split("/")), { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw wrap("list", dirKey, err);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    // Hidden entries are the temp directory or files nobody stored through this interface.
    if (entry.name.startsWith(".")) continue;
    const key = dirKey === "" ? entry.name : `${dirKey}/${entry.name}`;
    if (entry.isDirectory()) {
      if (prefix.startsWith(`${key}/`) || `${key}/`.startsWith(prefix) || key.startsWith(prefix)) {
        yield* walk(root, key, prefix);
      }
    } else if (entry.isFile() && key.startsWith(prefix)) {
      try {
        const stat = await fs.stat(path.join(root, ...key.split("/")));
        yield { key, size: stat.size };
      } catch (err) {
        // Deleted between readdir and stat: it is simply no longer there.
        if (!isMissing(err)) throw wrap("list", key, err);
      }
    }
  }
}

async function removeStaleTempFiles(tmpDir: string): Promise<void> {
  const cutoff = Date.now() - STALE_TMP_MS;
  let names: string[];
  try {
    names = await fs.readdir(tmpDir);
  } catch (err) {
    throw wrap("read temp directory", tmpDir, err);
  }
  for (const name of names) {
    const file = path.join(tmpDir, name);
    try {
      const stat = await fs.stat(file);
      // Younger files may belong to another process still writing into the same directory.
      if (stat.mtimeMs < cutoff) await fs.rm(file, { force: true, recursive: true });
    } catch (err) {
      if (!isMissing(err)) throw wrap("remove stale temp file", file, err);
    }
  }
}

/**
 * Renames `from` to `to` (a file under `root`) and makes the new name durable, creating `to`'s
 * directory if it is missing.
 */
async function moveInto(root: string, from: string, to: string): Promise<void> {
  const dir = path.dirname(to);
  try {
    await fs.rename(from, to);
  } catch (err) {
    // Directories are made on first use rather than checked on every put (one system call less).
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await fs.mkdir(dir, { recursive: true });
    await fs.rename(from, to);
    // New directories' own names must survive a crash too.
    for (let up = path.dirname(dir); up.length >= root.length && up.startsWith(root); up = path.dirname(up)) {
      await syncDirectory(up);
      if (up === root) break;
    }
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function wrap(op: string, key: string, err: unknown): StorageError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  return new StorageError(`local storage: ${op} ${key} failed${code ? ` (${code})` : ""}: ${detail}`, { cause: err });
}
