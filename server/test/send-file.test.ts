/**
 * NAR bytes copied to the socket through reused buffers (src/http/send-file.ts): every span
 * arrives byte for byte, also across buffer boundaries, with many downloads at once (buffers of
 * both sizes, reused between downloads) and after clients that hung up halfway.
 */
import { createServer, get, type Server } from "node:http";
import { randomBytes } from "node:crypto";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendFileSpan } from "../src/http/send-file.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const MiB = 1 << 20;

describe("sendFileSpan", () => {
  let dir: TempDir;
  let server: Server;
  let base: string;
  const files: Record<string, Buffer> = { a: randomBytes(5 * MiB + 123), b: randomBytes(3 * MiB - 7), short: randomBytes(1000), large: randomBytes(40 * MiB) };
  const outcomes: Array<"ok" | "failed"> = [];

  beforeAll(async () => {
    dir = await makeTempDir("send-file");
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir.path, name), bytes);
    // GET /<file>/<start>/<end>; "short" claims more bytes than the file has.
    server = createServer((req, res) => {
      const [, name, s, e] = (req.url ?? "").split("/");
      void (async () => {
        const handle = await open(join(dir.path, name as string), "r");
        const start = Number(s);
        const end = Number(e);
        res.writeHead(200, { "content-length": end - start + 1 });
        try {
          await sendFileSpan(res, handle, start, end);
          outcomes.push("ok");
        } catch {
          outcomes.push("failed");
          res.destroy();
        } finally {
          await handle.close();
        }
      })();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await dir?.cleanup();
  });

  const fetchSpan = async (name: string, start: number, end: number) => Buffer.from(await (await fetch(`${base}/${name}/${start}/${end}`)).arrayBuffer());

  it("sends whole files and spans across buffer boundaries byte for byte", async () => {
    const a = files.a as Buffer;
    const spans: Array<[number, number]> = [[0, a.length - 1], [0, 0], [a.length - 1, a.length - 1], [MiB - 1, MiB], [100, 3 * MiB + 5], [64 * 1024 - 1, 64 * 1024 + 1], [2 * MiB, a.length - 1]];
    for (const [s, e] of spans) expect((await fetchSpan("a", s, e)).equals(a.subarray(s, e + 1)), `${s}-${e}`).toBe(true);
  });

  it("keeps 40 downloads at once apart (large and small buffers, reused between downloads)", async () => {
    const jobs = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? (["a", 7 * i, (files.a as Buffer).length - 1 - i] as const) : (["b", i, (files.b as Buffer).length - 1] as const)));
    const got = await Promise.all(jobs.map(([n, s, e]) => fetchSpan(n, s, e)));
    jobs.forEach(([n, s, e], i) => expect(got[i]?.equals((files[n] as Buffer).subarray(s, e + 1)), `job ${i}`).toBe(true));
  });

  it("does not reuse a buffer the socket has not sent yet (a client that reads slowly)", async () => {
    // More than loopback's socket buffers take, so writes wait in the server.
    const a = files.large as Buffer;
    const got = await new Promise<Buffer>((resolve, reject) => {
      get(`${base}/large/0/${a.length - 1}`, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        // Long enough for the kernel's socket buffers to fill and writes to queue in the server.
        setTimeout(() => res.resume(), 300);
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks)));
        res.on("error", reject);
      }).on("error", reject);
    });
    expect(got.equals(a)).toBe(true);
  });

  it("gives up on a client that hung up, and serves the next one whole", async () => {
    const before = outcomes.length;
    await new Promise<void>((resolve) => {
      const req = get(`${base}/a/0/${(files.a as Buffer).length - 1}`, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => undefined);
    });
    for (let i = 0; i < 100 && outcomes.length === before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(outcomes.slice(before)).toEqual(["failed"]);
    expect((await fetchSpan("a", 0, (files.a as Buffer).length - 1)).equals(files.a as Buffer)).toBe(true);
  });

  it("fails, rather than sending less, when the file is shorter than the span", async () => {
    const before = outcomes.length;
    await expect(fetchSpan("short", 0, 5000)).rejects.toThrow();
    expect(outcomes.slice(before)).toEqual(["failed"]);
  });
});
