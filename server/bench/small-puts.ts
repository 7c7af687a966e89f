/**
 * `node bench/small-puts.ts [--paths N] [--size BYTES] [--attic] [--jobs N] [--s3] [--cpu-prof DIR]`
 * — the per-path cost of a closure push, without a client's own costs: N one-file NARs of a few
 * KiB, each pushed as Nix 2.8 does (`PUT nar/<filehash>.nar.zst`, then `PUT <hash>.narinfo`, one
 * at a time over one connection), or with --attic as `larder push` does (one `PUT
 * /_api/v1/upload-path` of the uncompressed NAR, --jobs at a time, 5 by default), against a fresh
 * larderd (its own process, SQLite, local disk by default); --zstd sends upload-path bodies in
 * zstd, as larder push does when the server stores zstd. Prints the paths per second, the median
 * and p90 of each request, and larderd's CPU time per path.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { cpuSeconds, startLarderd, type StorageSpec } from "./larderd.ts";
import { startS3rver, type S3rverHandle } from "../test/support/s3rver.ts";
import { narOfFile } from "../test/support/nar.ts";

const sha256 = (b: Buffer): Buffer => createHash("sha256").update(b).digest();

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      paths: { type: "string", default: "300" },
      size: { type: "string", default: "8192" },
      attic: { type: "boolean", default: false },
      zstd: { type: "boolean", default: false },
      jobs: { type: "string", default: "5" },
      s3: { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
    },
  });
  const paths = Number(values.paths);
  const size = Number(values.size);
  const work = await mkdtemp(join(tmpdir(), "larder-small-puts-"));
  let s3: S3rverHandle | undefined;
  try {
    if (values.s3) s3 = await startS3rver();
    const storage: StorageSpec = s3
      ? { type: "s3", endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.credentials.accessKeyId, secretAccessKey: s3.credentials.secretAccessKey, prefix: "p" }
      : { type: "local" };
    const larderd = await startLarderd({
      dir: join(work, "larderd"),
      databaseUrl: `sqlite://${join(work, "larder.db")}`,
      storage,
      ...(values["cpu-prof"] !== undefined && { cpuProfDir: values["cpu-prof"] }),
    });
    try {
      await larderd.admin(["create-cache", "c", "--public"]);
      const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--push", "c"])).trim().split("\n");
      const headers = { authorization: `Bearer ${out[out.length - 1]}` };
      // Letters only, as the bench's data: zstd about halves them, as it does real store paths.
      const letters = (n: number): Buffer => Buffer.from(randomBytes(n).map((b) => 97 + (b & 15)));
      const items = Array.from({ length: paths }, () => {
        const nar = narOfFile(letters(size));
        const file = zlib.zstdCompressSync(nar, { pledgedSrcSize: nar.length });
        const storePath = `/nix/store/${encodeNixBase32(randomBytes(20))}-small`;
        const fileHash = encodeNixBase32(sha256(file));
        const narinfo = [
          `StorePath: ${storePath}`,
          `URL: nar/${fileHash}.nar.zst`,
          "Compression: zstd",
          `FileHash: sha256:${fileHash}`,
          `FileSize: ${file.length}`,
          `NarHash: sha256:${encodeNixBase32(sha256(nar))}`,
          `NarSize: ${nar.length}`,
          "References: ",
          "",
        ].join("\n");
        const info = { cache: "c", store_path_hash: storePath.slice(11, 43), store_path: storePath, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: `sha256:${sha256(nar).toString("hex")}`, nar_size: nar.length };
        return { nar, file, fileHash, narinfo, hash: storePath.slice(11, 43), info: JSON.stringify(info) };
      });
      const cpuBefore = cpuSeconds(larderd.pid);
      const cpuPerPath = () => `larderd CPU ${(((cpuSeconds(larderd.pid) - cpuBefore) * 1e6) / paths).toFixed(0)} µs a path`;
      if (values.attic) {
        const jobs = Number(values.jobs);
        const ms: number[] = [];
        const started = performance.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: jobs }, async () => {
            for (let it = items[next++]; it; it = items[next++]) {
              const t = performance.now();
              const r = await fetch(`${larderd.url}/_api/v1/upload-path`, {
                method: "PUT",
                headers: { ...headers, "x-attic-nar-info": it.info, ...(values.zstd && { "content-encoding": "zstd" }) },
                body: values.zstd ? it.file : it.nar,
              });
              const text = await r.text();
              if (r.status !== 200) throw new Error(`upload-path answered ${r.status}: ${text}`);
              ms.push(performance.now() - t);
            }
          }),
        );
        const seconds = (performance.now() - started) / 1000;
        ms.sort((a, b) => a - b);
        console.log(
          `${paths} paths of ${size} bytes by upload-path${values.zstd ? " (zstd bodies)" : ""}, ${jobs} at a time (${s3 ? "s3rver" : "local disk"}): ${(paths / seconds).toFixed(0)} paths/s; ` +
            `p50 ${quantile(ms, 0.5).toFixed(2)} ms p90 ${quantile(ms, 0.9).toFixed(2)} ms; ${cpuPerPath()}`,
        );
        return;
      }
      const narMs: number[] = [];
      const infoMs: number[] = [];
      const started = performance.now();
      for (const it of items) {
        let t = performance.now();
        const r1 = await fetch(`${larderd.url}/c/nar/${it.fileHash}.nar.zst`, { method: "PUT", headers, body: it.file });
        await r1.arrayBuffer();
        if (r1.status !== 200) throw new Error(`PUT nar answered ${r1.status}`);
        narMs.push(performance.now() - t);
        t = performance.now();
        const r2 = await fetch(`${larderd.url}/c/${it.hash}.narinfo`, { method: "PUT", headers, body: it.narinfo });
        await r2.arrayBuffer();
        if (r2.status !== 200) throw new Error(`PUT narinfo answered ${r2.status}: ${await r2.text()}`);
        infoMs.push(performance.now() - t);
      }
      const seconds = (performance.now() - started) / 1000;
      narMs.sort((a, b) => a - b);
      infoMs.sort((a, b) => a - b);
      const f = (n: number) => n.toFixed(2);
      console.log(
        `${paths} paths of ${size} bytes (${s3 ? "s3rver" : "local disk"}): ${(paths / seconds).toFixed(0)} paths/s; ` +
          `PUT nar p50 ${f(quantile(narMs, 0.5))} ms p90 ${f(quantile(narMs, 0.9))} ms; ` +
          `PUT narinfo p50 ${f(quantile(infoMs, 0.5))} ms p90 ${f(quantile(infoMs, 0.9))} ms; ${cpuPerPath()}`,
      );
    } finally {
      await larderd.stop();
    }
  } finally {
    await s3?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
