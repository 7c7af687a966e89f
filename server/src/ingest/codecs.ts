/**
 * Stream codecs for NAR compression. zstd, brotli and gzip come from node:zlib (Node ≥ 22.15),
 * whose streams decode on the thread pool and stop at backpressure. Uploads in xz (Nix's
 * default) and bzip2 (Nix's default before xz) are decoded by the `xz` and `bzip2` programs
 * (process-codec.ts: lzma-native and unbzip2-stream buffer whole NARs); compressing to a stored
 * xz uses lzma-native, whose output is never larger than the chunk it was given.
 */
import { PassThrough, type Duplex } from "node:stream";
import zlib from "node:zlib";
import lzma from "lzma-native";
import { ServerError } from "../errors.ts";
import type { StoredCompression } from "../config/load.ts";
import { ProcessDecompressor } from "./process-codec.ts";

/**
 * xz's dictionary is allocated by the decoder at the size the stream's header asks for; `xz -9`
 * needs 65 MiB, so twice that admits every preset and refuses a header that asks for gigabytes.
 */
export const XZ_MEMLIMIT = "128MiB";
export const XZ_MEMLIMIT_BYTES = 128 * 1024 * 1024;

/** Compressions a client may upload in, by Nix's narinfo name. */
export type UploadCompression = "none" | "xz" | "zstd" | "br" | "bzip2" | "gzip";

const UPLOADABLE = new Set<string>(["none", "xz", "zstd", "br", "bzip2", "gzip"]);

export function isUploadCompression(c: string): c is UploadCompression {
  return UPLOADABLE.has(c);
}

/**
 * Output chunk of the zlib-family streams. Node's default (16 KiB) makes a 200 MiB NAR thirteen
 * thousand chunks, each a thread-pool round trip and a pass through the hashing and NAR-parsing
 * transforms; larger chunks cut that per-chunk cost (docs/PERFORMANCE.md, big-NAR ingest).
 */
const CHUNK = 128 * 1024;

export function decompressor(c: UploadCompression): Duplex {
  switch (c) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "zstd":
      return zlib.createZstdDecompress({ chunkSize: CHUNK });
    case "br":
      return zlib.createBrotliDecompress({ chunkSize: CHUNK });
    case "gzip":
      return zlib.createGunzip({ chunkSize: CHUNK });
    case "xz":
      return new ProcessDecompressor("xz", ["--decompress", "--stdout", "--quiet", `--memlimit-decompress=${XZ_MEMLIMIT}`]);
    case "bzip2":
      return new ProcessDecompressor("bzip2", ["--decompress", "--stdout", "--quiet"]);
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
      return zlib.createZstdCompress({ chunkSize: CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
    case "br":
      return zlib.createBrotliCompress({ chunkSize: CHUNK, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
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
