import { NixFormatError } from "./errors.ts";

/** What a completely parsed NAR contained. */
export interface NarStats {
  /** File system objects, counting the root: regular files, directories and symlinks. */
  entries: number;
  /** Sum of the sizes of all regular files. */
  regularBytes: number;
}

/** Longest token (keyword, file name, symlink target) accepted; PATH_MAX is 4096 on Linux. */
export const NAR_MAX_TOKEN = 4096;
// Restoring the NAR builds full paths; past this depth every path exceeds PATH_MAX ("/x" per
// level), so Nix could not restore it anyway. The cap also bounds the parser's memory.
export const NAR_MAX_DEPTH = 2048;

const MAGIC = "nix-archive-1";

type Need = { kind: "read" | "skip"; n: number; what: string };
type Grammar = Generator<Need, void, Uint8Array | undefined>;
type Reader<T> = Generator<Need, T, Uint8Array | undefined>;

const padding = (n: number) => (8 - (n % 8)) % 8;

function* u64(what: string, max: number): Reader<number> {
  const b = (yield { kind: "read", n: 8, what })!;
  const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
  const n = hi * 2 ** 32 + lo;
  if (hi > 0x1fffff || n > max) throw new NixFormatError(`${what} ${hi * 2 ** 32 + lo} exceeds the limit of ${max}`);
  return n;
}

function* checkPadding(len: number, what: string): Reader<void> {
  const pad = padding(len);
  if (pad === 0) return;
  const b = (yield { kind: "read", n: pad, what: `padding after ${what}` })!;
  if (b.some((x) => x !== 0)) throw new NixFormatError(`non-zero padding after ${what}`);
}

/** A length-prefixed, zero-padded string, as a latin1 string so that `<` compares bytes. */
function* token(what: string): Reader<string> {
  const len = yield* u64(`length of ${what}`, NAR_MAX_TOKEN);
  if (len === 0) return "";
  const b = (yield { kind: "read", n: len + padding(len), what })!;
  if (b.subarray(len).some((x) => x !== 0)) throw new NixFormatError(`non-zero padding after ${what}`);
  return Buffer.from(b.buffer, b.byteOffset, len).toString("latin1");
}

function* expect(want: string): Reader<void> {
  const got = yield* token(JSON.stringify(want));
  if (got !== want) throw new NixFormatError(`expected ${JSON.stringify(want)}, found ${show(got)}`);
}

function show(t: string): string {
  return JSON.stringify(t.length > 40 ? `${t.slice(0, 40)}…` : t);
}

function* grammar(stats: NarStats): Grammar {
  const magic = yield* token("NAR magic");
  if (magic !== MAGIC) throw new NixFormatError(`not a NAR: expected magic ${JSON.stringify(MAGIC)}, found ${show(magic)}`);

  // One frame per open directory: the last entry name, to enforce Nix's strictly sorted order.
  const dirs: { prev: string | null; inEntry: boolean }[] = [];
  for (;;) {
    // A node starts here: the root, or the value of a directory entry's "node".
    yield* expect("(");
    yield* expect("type");
    const type = yield* token("node type");
    stats.entries++;
    if (type === "regular") {
      let t = yield* token("regular file field");
      if (t === "executable") {
        yield* expect("");
        t = yield* token("regular file field");
      }
      if (t !== "contents") throw new NixFormatError(`expected "contents", found ${show(t)}`);
      const size = yield* u64("file size", Number.MAX_SAFE_INTEGER);
      if (size > 0) yield { kind: "skip", n: size, what: "file contents" };
      yield* checkPadding(size, "file contents");
      stats.regularBytes += size;
      yield* expect(")");
    } else if (type === "symlink") {
      yield* expect("target");
      const target = yield* token("symlink target");
      if (target === "" || target.includes("\0")) throw new NixFormatError(`invalid symlink target ${show(target)}`);
      yield* expect(")");
    } else if (type === "directory") {
      if (dirs.length >= NAR_MAX_DEPTH) throw new NixFormatError(`directories nested deeper than ${NAR_MAX_DEPTH} levels`);
      dirs.push({ prev: null, inEntry: false });
    } else {
      throw new NixFormatError(`unknown node type ${show(type)}`);
    }

    // Close finished entries and directories until a new entry starts a node, or the root ends.
    for (;;) {
      const dir = dirs[dirs.length - 1];
      if (!dir) return;
      if (dir.inEntry) {
        yield* expect(")");
        dir.inEntry = false;
      }
      const t = yield* token("directory field");
      if (t === ")") {
        dirs.pop();
        continue;
      }
      if (t !== "entry") throw new NixFormatError(`expected "entry" or ")", found ${show(t)}`);
      yield* expect("(");
      yield* expect("name");
      const name = yield* token("entry name");
      if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        throw new NixFormatError(`invalid file name ${show(name)} in directory`);
      }
      if (dir.prev !== null && name <= dir.prev) {
        throw new NixFormatError(`directory entries not in sorted order: ${show(name)} after ${show(dir.prev)}`);
      }
      dir.prev = name;
      yield* expect("node");
      dir.inEntry = true;
      break;
    }
  }
}

/**
 * Validates a NAR as it streams past, without keeping file contents: feed chunks to push(),
 * call end() at the end of input. Only tokens (at most NAR_MAX_TOKEN bytes) are buffered.
 * Accepts exactly the canonical form `nix-store --dump` writes; the first error is thrown
 * by push() or end() and every later call rethrows it.
 */
export class NarParser {
  readonly #stats: NarStats = { entries: 0, regularBytes: 0 };
  readonly #gen: Grammar;
  readonly #buf = new Uint8Array(NAR_MAX_TOKEN + 8);
  #need: Need | undefined;
  #filled = 0;
  #offset = 0;
  #error: NixFormatError | undefined;
  #ended = false;

  constructor() {
    this.#gen = grammar(this.#stats);
    this.#advance(undefined);
  }

  /** Counts so far; final once end() has returned. */
  get stats(): NarStats {
    return { ...this.#stats };
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  push(chunk: Uint8Array): void {
    if (this.#error) throw this.#error;
    if (this.#ended) throw new Error("NarParser.push() called after end()");
    let pos = 0;
    while (pos < chunk.length) {
      const need = this.#need;
      if (!need) throw this.#fail(`${chunk.length - pos} bytes of trailing data after the end of the NAR`);
      const take = Math.min(need.n - this.#filled, chunk.length - pos);
      if (need.kind === "read") this.#buf.set(chunk.subarray(pos, pos + take), this.#filled);
      this.#filled += take;
      this.#offset += take;
      pos += take;
      if (this.#filled === need.n) {
        this.#advance(need.kind === "read" ? this.#buf.subarray(0, need.n) : undefined);
      }
    }
  }

  end(): NarStats {
    if (this.#error) throw this.#error;
    this.#ended = true;
    if (this.#need) {
      throw this.#fail(`NAR is truncated: input ended while reading ${this.#need.what}`);
    }
    return this.stats;
  }

  #advance(value: Uint8Array | undefined): void {
    let r: IteratorResult<Need, void>;
    try {
      r = this.#gen.next(value);
    } catch (e) {
      if (e instanceof NixFormatError) throw this.#fail(e.message);
      throw e;
    }
    this.#need = r.done ? undefined : r.value;
    this.#filled = 0;
  }

  #fail(message: string): NixFormatError {
    this.#error = new NixFormatError(`invalid NAR at byte ${this.#offset}: ${message}`);
    return this.#error;
  }
}
