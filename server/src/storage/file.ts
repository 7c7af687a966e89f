/** Storing a file that is already on disk (an ingest's spool file), whatever the backend. */
import * as fs from "node:fs/promises";
import { Readable } from "node:stream";
import type { Storage, StoredObject } from "./types.ts";

/**
 * A stream of a whole file whose read size is bounded by the file: a plain createReadStream
 * allocates a fresh buffer of its full highWaterMark for every read, which for a small file is
 * mostly garbage (1 MiB per read cost more than the rest of a small NAR's commit; bench).
 */
export async function openFileStream(path: string): Promise<{ stream: Readable; size: number }> {
  const handle = await fs.open(path, "r");
  try {
    const { size } = await handle.stat();
    if (size === 0) {
      await handle.close();
      return { stream: Readable.from([], { objectMode: false }), size };
    }
    return { stream: handle.createReadStream({ start: 0, end: size - 1, highWaterMark: 1 << 20 }), size };
  } catch (err) {
    await handle.close().catch(() => {});
    throw err;
  }
}

/**
 * Streams the file at `path` through `put`. The file is closed however `put` ends, also when it
 * refuses the key before reading a byte (an unread stream would hold its descriptor until the
 * garbage collector found it).
 */
export async function putFromFile(put: Storage["put"], key: string, path: string): Promise<StoredObject> {
  const { stream } = await openFileStream(path);
  try {
    return await put(key, stream);
  } finally {
    stream.destroy();
  }
}

/** putFile() where the backend has it, else the file streamed through put(). */
export async function storeFile(storage: Storage, key: string, path: string): Promise<StoredObject> {
  if (storage.putFile) return storage.putFile(key, path);
  return putFromFile((k, body) => storage.put(k, body), key, path);
}

/**
 * Whether a new NAR may be stored on this machine's disk from its spool file (local storage
 * fsyncs the file before the commit): then writing the spool back while the upload runs pays off.
 */
export function storesOnLocalDisk(backends: readonly { config: { storage: { type: string } } }[]): boolean {
  return backends.some((b) => b.config.storage.type === "local");
}
