/**
 * The `<hash>.ls` file of a binary cache: `{"version":1,"root":…}`, each node as Nix's listNar
 * writes it (regular files with size, executable, narOffset; symlinks with target; directories
 * with entries in NAR order). Built from a NarParser's visits, so the listing costs no second read.
 *
 * Bytes match Nix 2.8's writer: its JSON escapes only `"`, `\` and control characters and copies
 * every other byte as it is, so a non-UTF-8 file name is written as its raw bytes.
 */
import type { NarVisitor } from "./nar.ts";

/** Listings larger than this are not kept (see NarListing.result). */
export const NAR_LISTING_MAX_BYTES = 64 * 1024 * 1024;

const HEX = "0123456789abcdef";

/** A JSON string literal of a latin1 string (one char per byte), escaped as Nix's toJSON does. */
export function nixJsonString(s: string): string {
  let out = '"';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 32 && c !== 34 && c !== 92) continue;
    out += s.slice(from, i);
    from = i + 1;
    if (c === 34) out += '\\"';
    else if (c === 92) out += "\\\\";
    else if (c === 10) out += "\\n";
    else if (c === 13) out += "\\r";
    else if (c === 9) out += "\\t";
    else out += `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
  }
  return `${out + s.slice(from)}"`;
}

export class NarListing implements NarVisitor {
  readonly #parts: string[] = ['{"version":1,"root":'];
  /** Per open directory: whether an entry has been written yet. */
  readonly #first: boolean[] = [];
  readonly #max: number;
  #size = 0;
  #overflow = false;

  constructor(maxBytes = NAR_LISTING_MAX_BYTES) {
    this.#max = maxBytes;
  }

  #put(s: string): void {
    if (this.#overflow) return;
    this.#size += s.length;
    if (this.#size > this.#max) {
      // Memory stays bounded whatever the NAR: past the cap the listing is dropped, not grown.
      this.#overflow = true;
      this.#parts.length = 0;
      return;
    }
    this.#parts.push(s);
  }

  regular(size: number, executable: boolean, narOffset: number): void {
    this.#put(`{"type":"regular","size":${size}${executable ? ',"executable":true' : ""},"narOffset":${narOffset}}`);
  }

  symlink(target: string): void {
    this.#put(`{"type":"symlink","target":${nixJsonString(target)}}`);
  }

  directoryStart(): void {
    this.#put('{"type":"directory","entries":{');
    this.#first.push(true);
  }

  entry(name: string): void {
    const top = this.#first.length - 1;
    const sep = this.#first[top] ? "" : ",";
    this.#first[top] = false;
    this.#put(`${sep}${nixJsonString(name)}:`);
  }

  directoryEnd(): void {
    this.#first.pop();
    this.#put("}}");
  }

  /** The listing's bytes once the parse has ended, or null when it outgrew the cap. */
  result(): Buffer | null {
    if (this.#overflow) return null;
    return Buffer.from(`${this.#parts.join("")}}`, "latin1");
  }
}
