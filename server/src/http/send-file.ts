/**
 * Copies a span of an open file to an HTTP response through two reused buffers: one is read
 * into while the other is being written. Node has no sendfile, and a file stream allocates a
 * new buffer for every read and goes through the stream machinery per chunk, which held one
 * connection to a fifth of nginx's rate (docs/PERFORMANCE.md); reused 1 MiB buffers more than
 * double it. Memory stays bounded: while many downloads run at once, each takes small buffers.
 */
import type { ServerResponse } from "node:http";
import type { FileHandle } from "node:fs/promises";

const BIG = 1 << 20;
const SMALL = 64 << 10;
/** Downloads that may hold 2 × BIG at a time; the others get 2 × SMALL (so at most 32 MiB + 128 KiB each). */
const BIG_SLOTS = 16;
const pool: Buffer[] = [];
let bigInUse = 0;

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(new Error("the client closed the connection"));
    res.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Sends bytes `start`..`end` (inclusive) of `handle` on `res`, whose head is already set, then
 * ends it. Resolves when the last byte is handed to the socket; rejects (without ending `res`:
 * the caller destroys it, as the head is gone) if the file cannot be read or the client went
 * away. Does not close `handle`.
 */
export async function sendFileSpan(res: ServerResponse, handle: FileHandle, start: number, end: number): Promise<void> {
  const total = end - start + 1;
  const big = total > SMALL && bigInUse < BIG_SLOTS;
  const size = big ? BIG : SMALL;
  if (big) bigInUse++;
  const bufs = big ? [pool.pop() ?? Buffer.allocUnsafeSlow(BIG), pool.pop() ?? Buffer.allocUnsafeSlow(BIG)] : [Buffer.allocUnsafe(SMALL), Buffer.allocUnsafe(SMALL)];
  const writing: Array<Promise<void> | undefined> = [undefined, undefined];
  let pos = start;
  let i = 0;
  let settled = false;
  try {
    while (pos <= end) {
      await writing[i];
      const buf = bufs[i] as Buffer;
      const { bytesRead } = await handle.read(buf, 0, Math.min(size, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`the file ended ${end - pos + 1} bytes early`);
      pos += bytesRead;
      const w = write(res, bytesRead === size ? buf : buf.subarray(0, bytesRead));
      // Seen at once, so a failed write does not wait for the other buffer's turn to surface.
      w.catch(() => undefined);
      writing[i] = w;
      i ^= 1;
    }
    await Promise.all(writing);
    settled = true;
    res.end();
  } finally {
    // After a failure a write may still hold a buffer: those are dropped, not pooled.
    if (big) {
      bigInUse--;
      if (settled) pool.push(...bufs);
    }
  }
}
