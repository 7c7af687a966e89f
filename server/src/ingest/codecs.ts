/**
 * Stream codecs for NAR compression. zstd and brotli come from node:zlib (Node ≥ 22.15), xz from
 * lzma-native (prebuilt inside the npm package), bzip2 decoding from unbzip2-stream (Nix's
 * default before xz, still accepted on upload).
 */
import { PassThrough, type Duplex } from "node:stream";
import zlib from "node:zlib";
import lzma from "lzma-native";
import unbzip2 from "unbzip2-stream";
import { ServerError } from "../errors.ts";
import type { StoredCompression } from "../config/load.ts";

/** Compressions a client may upload in, by Nix's narinfo name. */
export type UploadCompression = "none" | "xz" | "zstd" | "br" | "bzip2" | "gzip";

const UPLOADABLE = new Set<string>(["none", "xz", "zstd", "br", "bzip2", "gzip"]);

export function isUploadCompression(c: string): c is UploadCompression {
  return UPLOADABLE.has(c);
}

export function decompressor(c: UploadCompression): Duplex {
  switch (c) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "zstd":
      return zlib.createZstdDecompress();
    case "br":
      return zlib.createBrotliDecompress();
    case "gzip":
      return zlib.createGunzip();
    case "xz":
      return lzma.createDecompressor() as unknown as Duplex;
    case "bzip2":
      return unbzip2() as unknown as Duplex;
    default: {
      const never: never = c;
      throw new ServerError("InvalidCompressionType", `Unsupported compression "${String(never)}"`);
    }
  }
}

export function compressor(c: StoredCompression, level: number): Duplex {
  switch (c) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "zstd":
      return zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
    case "br":
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
    case "xz":
      return lzma.createCompressor({ preset: level }) as unknown as Duplex;
    default: {
      const never: never = c;
      throw new Error(`unknown stored compression ${String(never)}`);
    }
  }
}

/** File extension of a stored NAR, as Nix names them. */
export function storedExtension(c: StoredCompression): string {
  return c === "none" ? ".nar" : c === "zstd" ? ".nar.zst" : c === "br" ? ".nar.br" : ".nar.xz";
}
