// Minimal typings for the two codec packages that ship none.
declare module "lzma-native" {
  import type { Duplex } from "node:stream";
  export function createCompressor(opts?: { preset?: number; threads?: number }): Duplex;
  export function createDecompressor(opts?: Record<string, unknown>): Duplex;
  const lzma: { createCompressor: typeof createCompressor; createDecompressor: typeof createDecompressor };
  export default lzma;
}
declare module "unbzip2-stream" {
  import type { Duplex } from "node:stream";
  export default function unbzip2(): Duplex;
}
