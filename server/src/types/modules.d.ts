// Minimal typings for the codec package that ships none.
declare module "lzma-native" {
  import type { Duplex } from "node:stream";
  export function createCompressor(opts?: { preset?: number; threads?: number }): Duplex;
  export function createDecompressor(opts?: Record<string, unknown>): Duplex;
  const lzma: { createCompressor: typeof createCompressor; createDecompressor: typeof createDecompressor };
  export default lzma;
}
