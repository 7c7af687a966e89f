/**
 * What sync-behind (src/ingest/pipeline.ts) saves: a spool file written at an upload's pace
 * (1 MiB every 15 ms), then the fsync that local storage makes before the commit, timed from the
 * last byte; alternating with and without it.
 *
 *   cd server && node bench/sync-behind.ts [FILE]   (FILE: the bytes to write; default 100 MiB of random letters)
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, openSync, fsyncSync, closeSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { SyncBehind } from "../src/ingest/pipeline.ts";
const data = process.argv[2] ? readFileSync(process.argv[2]) : Buffer.from(randomBytes(100 * 1048576).map((b) => 97 + (b & 15)));
const MiB = 1048576;
async function* paced() { for (let i = 0; i < data.length; i += MiB) { yield data.subarray(i, i + MiB); await sleep(15); } }
for (const round of [0, 1, 2, 3]) {
  const behind = round % 2 === 1;
  const path = join(tmpdir(), `larder-sync-behind-${process.pid}-${round}.spool`);
  const file = createWriteStream(path, { highWaterMark: MiB });
  const t0 = performance.now();
  await (behind ? pipeline(Readable.from(paced()), new SyncBehind(file), file) : pipeline(Readable.from(paced()), file));
  const t1 = performance.now();
  const fd = openSync(path, "r"); fsyncSync(fd); closeSync(fd);
  const t2 = performance.now();
  console.log(`${behind ? "sync-behind" : "plain      "}: writing ${(t1 - t0).toFixed(0)} ms, fsync after the last byte ${(t2 - t1).toFixed(0)} ms`);
  rmSync(path);
}
