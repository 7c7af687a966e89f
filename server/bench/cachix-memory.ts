/**
 * `node server/bench/cachix-memory.ts [--nar-mib 1024] [--part-mib 32]` — larderd's peak memory
 * and the time a Cachix multipart push of one big NAR takes: the client's requests (as in
 * server/test/support/cachix-client.ts) with a NAR of random bytes (incompressible, so every part
 * is full), zstd level 2 as the client compresses, cut into parts uploaded four at a time to the
 * part URLs larderd serves (local storage), then `complete`, which reads the parts back through
 * the ingest. The client streams: it holds at most the parts in flight. Prints one line.
 */
import { createHash, randomFillSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { sampleRss, startLarderd } from "./larderd.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";

const { values } = parseArgs({ options: { "nar-mib": { type: "string" }, "part-mib": { type: "string" } } });
const narMiB = Number(values["nar-mib"] ?? 1024);
const partBytes = Number(values["part-mib"] ?? 32) * 2 ** 20;
const MIB = 2 ** 20;

/** A NAR string: length, bytes, zero padding to 8. */
const str = (s: string | Buffer): Buffer => {
  const b = Buffer.from(s);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
};

const work = await mkdtemp(join(tmpdir(), "larder-cachix-memory-"));
const larderd = await startLarderd({ dir: join(work, "larderd"), databaseUrl: `sqlite://${join(work, "db.sqlite")}`, storage: { type: "local" } });
try {
  await larderd.admin(["create-cache", "mem"]);
  const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
  const token = out[out.length - 1] as string;
  const headers = { "user-agent": "cachix 1.11.1", authorization: `Bearer ${token}`, "content-type": "application/json;charset=utf-8" };
  const api = async (path: string, body?: unknown) => {
    const res = await fetch(`${larderd.url}${path}`, { method: "POST", headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    const text = await res.text();
    return text === "" ? undefined : JSON.parse(text);
  };
  const before = larderd.memory();
  const sampler = sampleRss(larderd.pid);
  const started = performance.now();
  const { narId, uploadId } = await api("/api/v1/cache/mem/multipart-nar?compression=zst");
  const q = `uploadId=${encodeURIComponent(uploadId)}`;

  // The NAR of one regular file of random bytes, compressed as it is made.
  const dataBytes = narMiB * MIB;
  const narHash = createHash("sha256");
  const fileHash = createHash("sha256");
  let narSize = 0;
  let fileSize = 0;
  const zstd = zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: 2 } });
  const feed = (b: Buffer) => {
    narHash.update(b);
    narSize += b.length;
    return zstd.write(b);
  };
  const producing = (async () => {
    const wait = () => new Promise((r) => zstd.once("drain", r));
    for (const b of [str("nix-archive-1"), str("("), str("type"), str("regular"), str("contents")]) feed(b);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(dataBytes));
    feed(len);
    for (let left = dataBytes; left > 0; left -= MIB) if (!feed(randomFillSync(Buffer.allocUnsafe(Math.min(MIB, left))))) await wait();
    feed(Buffer.alloc((8 - (dataBytes % 8)) % 8));
    feed(str(")"));
    zstd.end();
  })();

  const etags: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const upload = async (n: number, part: Buffer) => {
    const md5 = createHash("md5").update(part).digest("base64");
    const { uploadUrl } = await api(`/api/v1/cache/mem/multipart-nar/${narId}?${q}&partNumber=${n}`, { contentMD5: md5 });
    const res = await fetch(uploadUrl, { method: "PUT", headers: { "content-type": "application/octet-stream", "content-md5": md5 }, body: part });
    if (res.status !== 200) throw new Error(`part ${n}: ${res.status} ${await res.text()}`);
    etags[n - 1] = res.headers.get("etag") as string;
  };
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let parts = 0;
  const flush = async () => {
    const part = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    const p = upload(++parts, part).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 4) await Promise.race(inFlight);
  };
  for await (const c of zstd) {
    const chunk = c as Buffer;
    fileHash.update(chunk);
    fileSize += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(partBytes - pendingBytes, chunk.length - off);
      pending.push(chunk.subarray(off, off + take));
      pendingBytes += take;
      off += take;
      if (pendingBytes === partBytes) await flush();
    }
  }
  await producing;
  await flush();
  await Promise.all(inFlight);
  const uploaded = performance.now();
  await api(`/api/v1/cache/mem/multipart-nar/${narId}/complete?${q}`, {
    parts: etags.map((eTag, i) => ({ partNumber: i + 1, eTag })),
    narInfoCreate: {
      cStoreHash: "0".repeat(32),
      cStoreSuffix: `cachix-memory-${narMiB}m`,
      cNarHash: `sha256:${encodeNixBase32(narHash.digest())}`,
      cNarSize: narSize,
      cFileHash: fileHash.digest("hex"),
      cFileSize: fileSize,
      cReferences: [],
      cDeriver: "unknown-deriver",
      cSig: null,
    },
  });
  const done = performance.now();
  const peak = sampler.stop();
  const after = larderd.memory();
  process.stdout.write(
    `cachix push, ${narMiB} MiB NAR in ${parts} parts of ${partBytes / MIB} MiB: larderd VmHWM ${after.hwmMiB.toFixed(0)} MiB ` +
      `(RSS ${before.rssMiB.toFixed(0)} MiB before, largest sample ${peak.toFixed(0)} MiB); parts ${((uploaded - started) / 1000).toFixed(1)} s, complete ${((done - uploaded) / 1000).toFixed(1)} s\n`,
  );
} finally {
  await larderd.stop();
  await rm(work, { recursive: true, force: true });
}
