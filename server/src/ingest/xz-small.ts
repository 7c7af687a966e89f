/**
 * xz uploads small enough for the in-memory path, decoded in process. Streams decode xz in an
 * `xz` child process (process-codec.ts: lzma-native's streams buffer whole NARs), but starting
 * one costs larderd about 12 ms of CPU (fork of a large process), twice the rest of a small
 * path's ingest, and Nix 2.8 uploads in xz by default (docs/PERFORMANCE.md, write path).
 *
 * lzma-native decodes a whole input chunk before handing back anything, so the input is fed in
 * slices small enough that one slice cannot expand past a few MiB (xz's ratio is bounded, a few
 * thousand to one on zeros), and decoding stops once the output passes `maxBytes`. Anything but
 * a clean decode within the bound answers undefined: the caller streams the upload through the
 * `xz` program instead, which also gives the refusals their one wording.
 */
import lzma from "lzma-native";
import { XZ_MEMLIMIT_BYTES } from "./codecs.ts";

const SLICE = 1024;

export async function decodeSmallXz(input: Buffer, maxBytes: number): Promise<Buffer | undefined> {
  const decoder = lzma.createDecompressor({ synchronous: true, memlimit: XZ_MEMLIMIT_BYTES });
  const out: Buffer[] = [];
  let size = 0;
  let failed = false;
  decoder.on("data", (b: Buffer) => {
    size += b.length;
    if (size <= maxBytes) out.push(b);
  });
  const ended = new Promise<void>((resolve) => {
    decoder.once("end", resolve);
    decoder.once("error", () => {
      failed = true;
      resolve();
    });
  });
  try {
    for (let i = 0; i < input.length && !failed && size <= maxBytes; i += SLICE) {
      // A decoder that fails may never call back for the slice it failed on.
      await Promise.race([new Promise<void>((resolve) => decoder.write(input.subarray(i, i + SLICE), () => resolve())), ended]);
    }
    if (failed || size > maxBytes) return undefined;
    decoder.end();
    await ended;
    return failed || size > maxBytes ? undefined : Buffer.concat(out, size);
  } finally {
    decoder.destroy();
  }
}
