/**
 * A replay of the Cachix client's HTTP requests (cachix 1.11.1, from its source; see
 * shared/research/cachix-protocol.md): the client itself is a Haskell program that cannot be built
 * here. Every request carries what the client sends: `User-Agent: cachix 1.11.1`, servant-auth's
 * `Authorization: Bearer <token>` (an empty token too), servant's JSON content type with charset;
 * part PUTs go to the URL the server gave, with only Content-Type and Content-MD5. Each call
 * returns the raw status so tests can assert the exact codes the client requires.
 */
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { NixEnv } from "./nix.ts";

const run = promisify(execFile);

export const CACHIX_USER_AGENT = "cachix 1.11.1";
export const MIB = 1024 * 1024;

export interface CachixOptions {
  /** The client's base URL (`--host`), without trailing slash. */
  host: string;
  /** $CACHIX_AUTH_TOKEN; "" sends servant-auth's empty `Bearer `. */
  token: string;
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json<T>(): T;
}

export interface PathToPush {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string | null;
}

export interface PushOptions {
  compression?: "zst" | "xz";
  /** --chunk-size (default 32 MiB, minimum 5 MiB). */
  chunkSize?: number;
  /** --num-concurrent-chunks (default 4). */
  concurrentChunks?: number;
  /** Signs with this raw 64-byte libsodium secret key (CACHIX_SIGNING_KEY) and sends cSig. */
  sign?: (fingerprint: string) => string;
  /** Drop the ETags, as the client does when any part PUT came back without one. */
  nullParts?: boolean;
  /** The compressed file to send as is (cachix import streams the source NAR unchanged). */
  file?: Buffer;
}

export class CachixReplay {
  readonly host: string;
  readonly token: string;
  constructor(opts: CachixOptions) {
    this.host = opts.host;
    this.token = opts.token;
  }

  headers(json: boolean): Record<string, string> {
    return {
      "user-agent": CACHIX_USER_AGENT,
      authorization: `Bearer ${this.token}`,
      accept: "application/json;charset=utf-8,application/json",
      ...(json && { "content-type": "application/json;charset=utf-8" }),
    };
  }

  async request(method: string, path: string, body?: unknown): Promise<Reply> {
    const res = await fetch(`${this.host}${path}`, {
      method,
      headers: this.headers(body !== undefined),
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = method === "HEAD" ? "" : await res.text();
    return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
  }

  /** `GET /api/v1/cache/NAME` (push in token mode, use, doctor). */
  getCache(name: string): Promise<Reply> {
    return this.request("GET", `/api/v1/cache/${name}`);
  }

  /** `POST /api/v1/cache/NAME/narinfo` with store hashes; the answer lists the missing ones. */
  narinfoBulk(name: string, hashes: string[]): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/narinfo`, hashes);
  }

  /** `HEAD /api/v1/cache/NAME/HASH.narinfo` (cachix import). */
  narinfoHead(name: string, hash: string): Promise<Reply> {
    return this.request("HEAD", `/api/v1/cache/${name}/${hash}.narinfo`);
  }

  createUpload(name: string, compression: "zst" | "xz"): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/multipart-nar?compression=${compression}`);
  }

  partUrl(name: string, narId: string, uploadId: string, partNumber: number, contentMD5: string): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/multipart-nar/${narId}?uploadId=${encodeURIComponent(uploadId)}&partNumber=${partNumber}`, { contentMD5 });
  }

  /** The raw part PUT: plain http-client, no Authorization. */
  async putPart(url: string, part: Buffer, contentMD5: string): Promise<Reply> {
    const res = await fetch(url, { method: "PUT", headers: { "content-type": "application/octet-stream", "content-md5": contentMD5 }, body: part });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
  }

  complete(name: string, narId: string, uploadId: string, body: unknown): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/multipart-nar/${narId}/complete?uploadId=${encodeURIComponent(uploadId)}`, body);
  }

  abort(name: string, narId: string, uploadId: string): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/multipart-nar/${narId}/abort?uploadId=${encodeURIComponent(uploadId)}`);
  }

  registerKey(name: string, publicKeyBase64: string): Promise<Reply> {
    return this.request("POST", `/api/v1/cache/${name}/key`, { publicKey: publicKeyBase64 });
  }

  /**
   * One path through §4.4 b–f: create, then per part a URL and a PUT (up to `concurrentChunks` at
   * once), then complete with the NarInfoCreate. Throws with the status of the first failing step.
   */
  async uploadPath(name: string, nix: NixEnv, p: PathToPush, opts: PushOptions = {}): Promise<{ narId: string; uploadId: string; parts: number }> {
    const compression = opts.compression ?? "zst";
    const file = opts.file ?? (await compressNar(await dumpNar(nix, p.path), compression));
    const created = await this.createUpload(name, compression);
    if (created.status !== 200) throw new Error(`create: ${created.status} ${created.text}`);
    const { narId, uploadId } = created.json<{ narId: string; uploadId: string }>();
    const chunk = opts.chunkSize ?? 32 * MIB;
    // The chunker always emits its last buffer, so an exact multiple ends with an empty part.
    const parts: Buffer[] = [];
    for (let off = 0; off <= file.length; off += chunk) parts.push(file.subarray(off, Math.min(off + chunk, file.length)));
    const etags: (string | null)[] = new Array(parts.length).fill(null);
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const i = next++;
        const part = parts[i]!;
        const md5 = createHash("md5").update(part).digest("base64");
        const u = await this.partUrl(name, narId, uploadId, i + 1, md5);
        if (u.status !== 200) throw new Error(`part url ${i + 1}: ${u.status} ${u.text}`);
        const put = await this.putPart(u.json<{ uploadUrl: string }>().uploadUrl, part, md5);
        if (put.status < 200 || put.status > 299) throw new Error(`part put ${i + 1}: ${put.status} ${put.text}`);
        etags[i] = put.headers.get("etag");
      }
    };
    await Promise.all(Array.from({ length: opts.concurrentChunks ?? 4 }, worker));
    const withTags = etags.every((e) => e !== null) && !opts.nullParts;
    const body = {
      parts: withTags ? etags.map((eTag, i) => ({ partNumber: i + 1, eTag })) : null,
      narInfoCreate: narInfoCreate(p, file, opts.sign),
    };
    const done = await this.complete(name, narId, uploadId, body);
    if (done.status !== 200) throw new Error(`complete: ${done.status} ${done.text}`);
    return { narId, uploadId, parts: parts.length };
  }
}

const base = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** `NarInfoCreate` as Push.hs builds it (splitStorePath: drop 11 chars, take 32, suffix after the dash). */
export function narInfoCreate(p: PathToPush, file: Buffer, sign?: (fp: string) => string): Record<string, unknown> {
  const refs = [...new Set(p.references.map(base))].sort();
  const fp = `1;${p.path};${p.narHash};${p.narSize};${refs.map((r) => `/nix/store/${r}`).join(",")}`;
  return {
    cStoreHash: p.path.slice(11, 43),
    cStoreSuffix: p.path.slice(44),
    cNarHash: p.narHash,
    cNarSize: p.narSize,
    cFileHash: createHash("sha256").update(file).digest("hex"),
    cFileSize: file.length,
    cReferences: p.references.map(base),
    cDeriver: p.deriver ? base(p.deriver) : "unknown-deriver",
    cSig: sign ? sign(fp) : null,
  };
}

export async function dumpNar(nix: NixEnv, path: string): Promise<Buffer> {
  const { stdout } = await run("nix", ["--store", nix.src, "store", "dump-path", path], {
    env: nix.env,
    encoding: "buffer",
    maxBuffer: 256 * MIB,
  });
  return stdout;
}

/** The client's default level is 2 for both. */
export async function compressNar(nar: Buffer, compression: "zst" | "xz"): Promise<Buffer> {
  if (compression === "zst") return zlib.zstdCompressSync(nar, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 2 } });
  const child = execFile("xz", ["-2", "-c"], { encoding: "buffer", maxBuffer: 256 * MIB });
  const out = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    child.stdout!.on("data", (c: Buffer) => chunks.push(c));
    child.on("close", (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`xz exited ${code}`))));
  });
  child.stdin!.end(nar);
  return out;
}

/** What `cachix use` writes for a private cache into netrc (NetRc.hs: login omitted when empty). */
export function cachixNetrcEntry(uri: string, token: string): string {
  const machine = uri.replace(/^https:\/\//, "").replace(/^http:\/\//, "");
  return `machine ${machine} password ${token}\n`;
}

/** The two lines `cachix use` rewrites in nix.conf (NixConf.add), for a conf that had neither. */
export function cachixNixConfLines(uri: string, keys: string[]): string {
  return (
    `substituters = https://cache.nixos.org ${uri}\n` +
    `trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= ${keys.join(" ")}\n`
  );
}
