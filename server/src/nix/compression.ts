import { NixFormatError } from "./errors.ts";

/** The narinfo `Compression:` values Nix 2.8 reads and writes. */
export type NixCompression = "none" | "xz" | "bzip2" | "br" | "zstd" | "gzip" | "lz4" | "lzip";

export const NIX_COMPRESSIONS: readonly NixCompression[] = ["none", "xz", "bzip2", "br", "zstd", "gzip", "lz4", "lzip"];

// Nix 2.8's binary-cache-store picks the suffix with a chain of comparisons that has no gzip
// case, so gzip NARs are written as plain `.nar`, the same name as uncompressed ones.
const EXTENSION: Record<NixCompression, string> = {
  none: ".nar",
  gzip: ".nar",
  xz: ".nar.xz",
  bzip2: ".nar.bz2",
  zstd: ".nar.zst",
  br: ".nar.br",
  lz4: ".nar.lz4",
  lzip: ".nar.lzip",
};

const BY_SUFFIX: ReadonlyArray<readonly [string, NixCompression]> = [
  [".nar.xz", "xz"],
  [".nar.bz2", "bzip2"],
  [".nar.zst", "zstd"],
  [".nar.br", "br"],
  [".nar.lz4", "lz4"],
  [".nar.lzip", "lzip"],
  [".nar", "none"],
];

export function isNixCompression(s: string): s is NixCompression {
  return (NIX_COMPRESSIONS as readonly string[]).includes(s);
}

/** Parses a narinfo `Compression:` value or a `?compression=` store parameter. */
export function parseCompression(s: string): NixCompression {
  if (isNixCompression(s)) return s;
  throw new NixFormatError(`unknown compression method ${JSON.stringify(s)} (known: ${NIX_COMPRESSIONS.join(", ")})`);
}

/** The file suffix Nix 2.8 gives a NAR with this compression (`.nar` for both none and gzip). */
export function narExtension(c: NixCompression): string {
  return EXTENSION[c];
}

/**
 * Compression implied by a NAR file name such as `nar/<hash>.nar.zst`, or undefined if the
 * name does not end in a NAR suffix. A plain `.nar` yields "none", but Nix 2.8 also writes
 * gzip NARs under that name: when the narinfo is not at hand, check the bytes with
 * `compressionFromMagic`.
 */
export function compressionFromNarExtension(fileName: string): NixCompression | undefined {
  for (const [suffix, c] of BY_SUFFIX) {
    if (fileName.endsWith(suffix) && fileName.length > suffix.length) return c;
  }
  return undefined;
}

/**
 * Recognises a compressed stream by its leading bytes. Returns "none" for a NAR (its first
 * token is the 13-byte string `nix-archive-1`), undefined when nothing matches. Brotli has no
 * magic number, so "br" is never returned.
 */
export function compressionFromMagic(head: Uint8Array): NixCompression | undefined {
  const starts = (...sig: number[]) => sig.every((b, i) => head[i] === b);
  if (starts(0x0d, 0, 0, 0, 0, 0, 0, 0, 0x6e, 0x69, 0x78, 0x2d)) return "none";
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return "xz";
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (starts(0x1f, 0x8b)) return "gzip";
  if (starts(0x42, 0x5a, 0x68)) return "bzip2";
  if (starts(0x04, 0x22, 0x4d, 0x18)) return "lz4";
  if (starts(0x4c, 0x5a, 0x49, 0x50)) return "lzip";
  return undefined;
}
