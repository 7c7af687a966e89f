/**
 * The framing of Nix archives (NAR), as `nix-store --dump` writes them: every token is a
 * little-endian u64 length, the bytes, and zero padding to a multiple of 8. Pure: the caller
 * walks the file system and feeds what it finds; see client/nar-dump.ts.
 *
 *   "nix-archive-1" "(" "type" "regular" ["executable" ""] "contents" <bytes> ")"
 *                       "type" "symlink" "target" <target> ")"
 *                       "type" "directory" ("entry" "(" "name" <n> "node" <node> ")")* ")"
 * Directory entries come in byte order of their names.
 */
export const NAR_MAGIC = "nix-archive-1";

const PADDING = Buffer.alloc(8);

export function padding(length: number): Buffer {
  return PADDING.subarray(0, (8 - (length % 8)) % 8);
}

export function lengthPrefix(length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(length));
  return b;
}

/** One whole token (length, bytes, padding). */
export function token(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  return Buffer.concat([lengthPrefix(bytes.length), bytes, padding(bytes.length)]);
}

export function tokens(...values: (string | Buffer)[]): Buffer {
  return Buffer.concat(values.map(token));
}

/** Nix's order of directory entries: bytewise on the names. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
