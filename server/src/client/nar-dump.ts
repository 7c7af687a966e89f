/**
 * A NAR straight from the file system, for stores whose files this process can read (the local
 * /nix/store or a chroot store given as a directory). Starting `nix store dump-path` costs about
 * 30 ms a path, which bounded pushes of many small paths; reading the files here costs almost
 * nothing. The server checks every byte against NarHash and NarSize, so a mistake here is a
 * refused upload, never a wrong one.
 */
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { compareNames, lengthPrefix, NAR_MAGIC, padding, tokens } from "../nix/nar-encode.ts";

/** Where `path` lives on this machine for `--store` STORE, or undefined when the store is not a local directory. */
export function physicalPath(path: string, store: string | undefined): string | undefined {
  if (store === undefined || store === "" || store === "local" || store === "auto") return path;
  if (store.startsWith("/")) return join(store, path);
  const m = /^local\?(?:.*&)?root=([^&]+)/.exec(store);
  if (m) return join(decodeURIComponent(m[1] as string), path);
  return undefined;
}

async function* node(file: string): AsyncGenerator<Buffer> {
  const st = await lstat(file);
  if (st.isSymbolicLink()) {
    yield tokens("(", "type", "symlink", "target", await readlink(file, { encoding: "buffer" }), ")");
  } else if (st.isFile()) {
    yield tokens("(", "type", "regular", ...((st.mode & 0o100) !== 0 ? ["executable", ""] : []), "contents");
    yield lengthPrefix(st.size);
    let seen = 0;
    if (st.size <= READ_CHUNK) {
      // One read of exactly its size: a stream would allocate a whole chunk for a small file.
      const contents = await readFile(file);
      seen = contents.length;
      yield contents;
    } else {
      for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) {
        seen += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    if (seen !== st.size) throw new Error(`${file} changed size while it was read`);
    yield padding(st.size);
    yield tokens(")");
  } else if (st.isDirectory()) {
    yield tokens("(", "type", "directory");
    const names = (await readdir(file)).sort(compareNames);
    for (const name of names) {
      yield tokens("entry", "(", "name", name, "node");
      yield* node(join(file, name));
      yield tokens(")");
    }
    yield tokens(")");
  } else {
    throw new Error(`${file} is neither a file, a directory nor a symlink`);
  }
}

const READ_CHUNK = 256 * 1024;
/** Pieces smaller than this are gathered into one buffer before they go on. */
const GATHER = 64 * 1024;

/**
 * Passes big pieces on as they are and gathers the small ones (the NAR's tokens, length
 * prefixes, padding, small files) into buffers of about GATHER bytes: each piece becomes a write
 * to the compressor, a round trip to the thread pool, and a closure of small files made
 * thousands of them.
 */
async function* gathered(pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let size = 0;
  for await (const p of pieces) {
    if (p.length >= GATHER) {
      if (size > 0) yield held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held, size);
      held = [];
      size = 0;
      yield p;
      continue;
    }
    held.push(p);
    size += p.length;
    if (size >= GATHER) {
      yield Buffer.concat(held, size);
      held = [];
      size = 0;
    }
  }
  if (size > 0) yield held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held, size);
}

/** The NAR of the file-system object at `file`. */
export function narOf(file: string): Readable {
  async function* archive(): AsyncGenerator<Buffer> {
    yield tokens(NAR_MAGIC);
    yield* node(file);
  }
  return Readable.from(gathered(archive()), { objectMode: false });
}
