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

// The grammar is one generator that yields what it needs next; the parser feeds it from the
// chunks as they arrive. Token framing (length, bytes, zero padding) is handled by the parser
// itself so that a token costs one resume, which keeps NARs of many small files fast.
const TOKEN = 0; // -> string (latin1, so `<` compares bytes as Nix's std::string does)
const SIZE = 1; // -> number (a u64 file size)
const SKIP = 2; // n bytes of file contents, not kept
const PAD = 3; // n zero bytes

type Need = { readonly kind: number; readonly what: string; readonly n: number };
type Grammar = Generator<Need, void, string | number | undefined>;

const tok = (what: string): Need => ({ kind: TOKEN, what, n: 0 });
const T_MAGIC = tok("NAR magic");
const T_OPEN = tok('"("');
const T_CLOSE = tok('")"');
const T_TYPE = tok('"type"');
const T_NODE_TYPE = tok("node type");
const T_FIELD = tok("regular file field");
const T_EMPTY = tok('""');
const T_TARGET_KW = tok('"target"');
const T_TARGET = tok("symlink target");
const T_DIR_FIELD = tok("directory field");
const T_NAME_KW = tok('"name"');
const T_NAME = tok("entry name");
const T_NODE_KW = tok('"node"');
const N_SIZE: Need = { kind: SIZE, what: "file size", n: 0 };

const padding = (n: number) => (8 - (n % 8)) % 8;

function show(t: string): string {
  return JSON.stringify(t.length > 40 ? `${t.slice(0, 40)}…` : t);
}

function want(got: string | number | undefined, expected: string): void {
  if (got !== expected) throw new NixFormatError(`expected ${JSON.stringify(expected)}, found ${show(String(got))}`);
}

/** What a parse reports as it goes, in NAR order (which is the listing's order). */
export interface NarVisitor {
  /** `narOffset` is where the file's contents start in the NAR. */
  regular(size: number, executable: boolean, narOffset: number): void;
  symlink(target: string): void;
  directoryStart(): void;
  /** A directory entry named `name` (latin1: one char per byte); its node follows. */
  entry(name: string): void;
  directoryEnd(): void;
}

function* grammar(stats: NarStats, visit: NarVisitor | undefined, offset: () => number): Grammar {
  const magic = (yield T_MAGIC) as string;
  if (magic !== MAGIC) throw new NixFormatError(`not a NAR: expected magic ${JSON.stringify(MAGIC)}, found ${show(magic)}`);

  // One frame per open directory: the last entry name, to enforce Nix's strictly sorted order.
  const dirs: { prev: string | null; inEntry: boolean }[] = [];
  for (;;) {
    // A node starts here: the root, or the value of a directory entry's "node".
    want(yield T_OPEN, "(");
    want(yield T_TYPE, "type");
    const type = (yield T_NODE_TYPE) as string;
    stats.entries++;
    if (type === "regular") {
      let t = yield T_FIELD;
      const executable = t === "executable";
      if (executable) {
        want(yield T_EMPTY, "");
        t = yield T_FIELD;
      }
      want(t, "contents");
      const size = (yield N_SIZE) as number;
      visit?.regular(size, executable, offset());
      if (size > 0) yield { kind: SKIP, what: "file contents", n: size };
      const pad = padding(size);
      if (pad > 0) yield { kind: PAD, what: "file contents", n: pad };
      stats.regularBytes += size;
      want(yield T_CLOSE, ")");
    } else if (type === "symlink") {
      want(yield T_TARGET_KW, "target");
      const target = (yield T_TARGET) as string;
      if (target === "" || target.includes("\0")) throw new NixFormatError(`invalid symlink target ${show(target)}`);
      visit?.symlink(target);
      want(yield T_CLOSE, ")");
    } else if (type === "directory") {
      if (dirs.length >= NAR_MAX_DEPTH) throw new NixFormatError(`directories nested deeper than ${NAR_MAX_DEPTH} levels`);
      dirs.push({ prev: null, inEntry: false });
      visit?.directoryStart();
    } else {
      throw new NixFormatError(`unknown node type ${show(type)}`);
    }

    // Close finished entries and directories until a new entry starts a node, or the root ends.
    for (;;) {
      const dir = dirs[dirs.length - 1];
      if (!dir) return;
      if (dir.inEntry) {
        want(yield T_CLOSE, ")");
        dir.inEntry = false;
      }
      const t = yield T_DIR_FIELD;
      if (t === ")") {
        dirs.pop();
        visit?.directoryEnd();
        continue;
      }
      if (t !== "entry") throw new NixFormatError(`expected "entry" or ")", found ${show(String(t))}`);
      want(yield T_OPEN, "(");
      want(yield T_NAME_KW, "name");
      const name = (yield T_NAME) as string;
      if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
        throw new NixFormatError(`invalid file name ${show(name)} in directory`);
      }
      if (dir.prev !== null && name <= dir.prev) {
        throw new NixFormatError(`directory entries not in sorted order: ${show(name)} after ${show(dir.prev)}`);
      }
      dir.prev = name;
      visit?.entry(name);
      want(yield T_NODE_KW, "node");
      dir.inEntry = true;
      break;
    }
  }
}

// Reading states of the parser (what the next input bytes are).
const S_LENGTH = 0; // the 8-byte length of a token, or a file size
const S_BODY = 1; // token bytes plus their padding
const S_SKIP = 2;
const S_PAD = 3;
const S_DONE = 4;

function readU64(b: Uint8Array, at: number, what: string, max: number): number {
  const lo = (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
  const hi = (b[at + 4]! | (b[at + 5]! << 8) | (b[at + 6]! << 16) | (b[at + 7]! << 24)) >>> 0;
  const n = hi * 2 ** 32 + lo;
  if (hi > 0x1fffff || n > max) throw new NixFormatError(`${what} ${n} exceeds the limit of ${max}`);
  return n;
}

function latin1(b: Uint8Array, from: number, len: number): string {
  let s = "";
  for (let i = from; i < from + len; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function allZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
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
  #need: Need = T_MAGIC;
  #state = S_LENGTH;
  /** Bytes wanted in the current state, and how many of them are in #buf (or skipped). */
  #want = 8;
  #have = 0;
  #tokenLen = 0;
  #offset = 0;
  #error: NixFormatError | undefined;
  #ended = false;

  /** `visit` hears of every node as it is parsed (e.g. to build the listing in the same pass). */
  constructor(visit?: NarVisitor) {
    this.#gen = grammar(this.#stats, visit, () => this.#offset);
    this.#resume(undefined);
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
    try {
      this.#consume(chunk);
    } catch (e) {
      if (e instanceof NixFormatError && e !== this.#error) throw this.#fail(e.message);
      throw e;
    }
  }

  end(): NarStats {
    if (this.#error) throw this.#error;
    this.#ended = true;
    if (this.#state !== S_DONE) {
      const what = this.#state === S_LENGTH && this.#need.kind === TOKEN ? `length of ${this.#need.what}` : this.#need.what;
      throw this.#fail(`NAR is truncated: input ended while reading ${what}`);
    }
    return this.stats;
  }

  #consume(chunk: Uint8Array): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      switch (this.#state) {
        case S_LENGTH: {
          let src = chunk;
          let at = pos;
          if (this.#have === 0 && len - pos >= 8) {
            pos += 8;
            this.#offset += 8;
          } else {
            const take = Math.min(8 - this.#have, len - pos);
            this.#buf.set(chunk.subarray(pos, pos + take), this.#have);
            this.#have += take;
            pos += take;
            this.#offset += take;
            if (this.#have < 8) break;
            src = this.#buf;
            at = 0;
          }
          this.#have = 0;
          if (this.#need.kind === SIZE) {
            this.#resume(readU64(src, at, this.#need.what, Number.MAX_SAFE_INTEGER));
            break;
          }
          const n = readU64(src, at, `length of ${this.#need.what}`, NAR_MAX_TOKEN);
          if (n === 0) {
            this.#resume("");
            break;
          }
          this.#tokenLen = n;
          this.#want = n + padding(n);
          // Common case: the whole token is in this chunk; read it in place.
          if (len - pos >= this.#want) {
            if (!allZero(chunk, pos + n, pos + this.#want)) {
              throw new NixFormatError(`non-zero padding after ${this.#need.what}`);
            }
            const s = latin1(chunk, pos, n);
            pos += this.#want;
            this.#offset += this.#want;
            this.#resume(s);
          } else {
            this.#state = S_BODY;
          }
          break;
        }
        case S_BODY:
        case S_PAD: {
          const take = Math.min(this.#want - this.#have, len - pos);
          this.#buf.set(chunk.subarray(pos, pos + take), this.#have);
          this.#have += take;
          pos += take;
          this.#offset += take;
          if (this.#have < this.#want) break;
          this.#have = 0;
          const n = this.#state === S_BODY ? this.#tokenLen : 0;
          if (!allZero(this.#buf, n, this.#want)) throw new NixFormatError(`non-zero padding after ${this.#need.what}`);
          this.#resume(this.#state === S_BODY ? latin1(this.#buf, 0, n) : undefined);
          break;
        }
        case S_SKIP: {
          const take = Math.min(this.#want - this.#have, len - pos);
          this.#have += take;
          pos += take;
          this.#offset += take;
          if (this.#have === this.#want) {
            this.#have = 0;
            this.#resume(undefined);
          }
          break;
        }
        default:
          throw new NixFormatError(`${len - pos} bytes of trailing data after the end of the NAR`);
      }
    }
  }

  #resume(value: string | number | undefined): void {
    const r = this.#gen.next(value);
    if (r.done) {
      this.#state = S_DONE;
      return;
    }
    const need = r.value;
    this.#need = need;
    if (need.kind === SKIP || need.kind === PAD) {
      this.#state = need.kind === SKIP ? S_SKIP : S_PAD;
      this.#want = need.n;
    } else {
      this.#state = S_LENGTH;
      this.#want = 8;
    }
  }

  #fail(message: string): NixFormatError {
    this.#error = new NixFormatError(`invalid NAR at byte ${this.#offset}: ${message}`);
    return this.#error;
  }
}
