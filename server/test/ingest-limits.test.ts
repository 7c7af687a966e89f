/**
 * Hostile and broken uploads meet limits, not memory or stuck connections: decompression bombs
 * get 413 while the NAR is still small, a client that goes away stops its decompressor, a body
 * the server does not read never leaves its keep-alive connection stuck, anonymous clients are
 * refused before any body is read, stalled bodies are cut off, and get-missing-paths has a cap.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { narOfFile } from "./support/nar.ts";
import { open, until } from "./support/socket.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { MAX_MISSING_PATHS_HASHES } from "../src/api/push-types.ts";

const MAX_NAR = 4 * 1024 * 1024;
const nix32 = (b: Buffer) => encodeNixBase32(createHash("sha256").update(b).digest());

/** Child processes of this process (the server runs in it) with this command name. */
async function children(comm: string): Promise<number> {
  let n = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (m && m[1] === comm && Number(m[2]) === process.pid) n++;
  }
  return n;
}

describe("ingest limits", () => {
  let l: Larder;
  let push: string;
  let pullOnly: string;
  const logLines: string[] = [];
  const auth = () => `authorization: Bearer ${push}`;
  const host = () => `host: ${new URL(l.url).host}`;
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${l.url}/metrics`)).text();
    return text
      .split("\n")
      .filter((line) => line.startsWith(name))
      .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
  };

  beforeAll(async () => {
    l = await startLarder("sqlite-local", {
      extraToml: `max-nar-size = ${MAX_NAR}\n[timeouts]\nbody-idle = "2s"\n`,
      logLines,
    });
    await createTestCache(l, "c");
    push = await l.token({ pull: ["c"], push: ["c"] });
    pullOnly = await l.token({ pull: ["c"] });
  });
  afterAll(() => l?.stop());

  for (const [codec, args, ext] of [
    ["xz", ["-c"], "xz"],
    ["bzip2", ["-9", "-c"], "bz2"],
  ] as const) {
    it(`answers a small ${codec} bomb with 413 as soon as its NAR passes max-nar-size`, async () => {
      const bomb = execFileSync(codec, args, { input: narOfFile(Buffer.alloc(2 * MAX_NAR)), maxBuffer: 1 << 20 });
      expect(bomb.length).toBeLessThan(1500);
      const started = Date.now();
      const res = await fetch(`${l.url}/c/nar/${nix32(bomb)}.nar.${ext}`, { method: "PUT", body: bomb, headers: { authorization: `Bearer ${push}` } });
      const body = (await res.json()) as { error: string; message: string };
      expect(res.status).toBe(413);
      expect(body.message).toMatch(/max-nar-size of 4194304/);
      // Decoding stops at the limit: a fraction of a second (bound generous for a loaded machine).
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await readdir(l.config.spoolDir)).toEqual([]);
      await until(`${codec} to exit`, async () => (await children(codec)) === 0);
    });
  }

  it("refuses an upload whose Content-Length is over the limit before reading it", async () => {
    const c = await open(l.url);
    c.write([`PUT /c/nar/${"0".repeat(52)}.nar.xz HTTP/1.1`, host(), auth(), `content-length: ${2 * MAX_NAR}`, "", ""].join("\r\n"));
    await c.closed(5000);
    expect(c.status()).toBe(413);
    expect(c.text()).toMatch(/connection: close/i);
  });

  it("stops the decompressor when the client goes away, and logs it as the client's doing", async () => {
    const errorsBefore = await metric("larder_backend_errors_total");
    const nar = narOfFile(randomBytes(3 * 1024 * 1024));
    const xz = execFileSync("xz", ["-0", "-c"], { input: nar, maxBuffer: 8 << 20 });
    const c = await open(l.url);
    c.write([`PUT /c/nar/${nix32(xz)}.nar.xz HTTP/1.1`, host(), auth(), `content-length: ${xz.length}`, "", ""].join("\r\n"));
    c.write(xz.subarray(0, 1024 * 1024));
    await until("xz to start", async () => (await children("xz")) === 1);
    c.socket.destroy();
    await until("xz to be stopped", async () => (await children("xz")) === 0);
    await until("the spool to be empty", async () => (await readdir(l.config.spoolDir)).length === 0);
    expect(await metric("larder_backend_errors_total")).toBe(errorsBefore);
    const levels = logLines.map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(levels.filter((e) => e.level >= 50)).toEqual([]);
    expect(levels.some((e) => e.msg === "client closed the connection during the request")).toBe(true);
  });

  it("takes a client hanging up inside a narinfo or an attic preamble as the client's doing", async () => {
    const errorsBefore = await metric("larder_backend_errors_total");
    const linesBefore = logLines.length;
    for (const head of [
      [`PUT /c/${"1".repeat(32)}.narinfo HTTP/1.1`, host(), auth(), "content-length: 5000"],
      ["PUT /_api/v1/upload-path HTTP/1.1", host(), auth(), "x-attic-nar-info-preamble-size: 5000", "content-length: 90000"],
    ]) {
      const c = await open(l.url);
      c.write(`${head.join("\r\n")}\r\n\r\nStorePath: /nix/store/`);
      await new Promise((r) => setTimeout(r, 100));
      c.socket.destroy();
    }
    await until("both requests to end", () => logLines.slice(linesBefore).filter((line) => line.includes("client closed the connection")).length === 2);
    expect(logLines.slice(linesBefore).filter((line) => (JSON.parse(line) as { level: number }).level >= 50)).toEqual([]);
    expect(await metric("larder_backend_errors_total")).toBe(errorsBefore);
  });

  describe("a body the server does not read never leaves its connection stuck", () => {
    // Declared bodies under max-nar-size, so what answers is each route's own refusal.
    const big = 3 * 1024 * 1024;
    const cases: Array<[string, () => string[], number]> = [
      ["a push without the push permission (nar)", () => [`PUT /c/nar/${"1".repeat(52)}.nar.xz HTTP/1.1`, host(), `authorization: Bearer ${pullOnly}`, `content-length: ${big}`], 403],
      ["an upload that is not a NAR", () => [`PUT /c/nar/${"1".repeat(52)}.nar HTTP/1.1`, host(), auth(), `content-length: ${big}`], 400],
      ["an attic upload without its info", () => ["PUT /_api/v1/upload-path HTTP/1.1", host(), auth(), "transfer-encoding: chunked"], 400],
      ["an anonymous JSON request", () => ["POST /_api/v1/cache-config/x HTTP/1.1", host(), "content-type: application/json", `content-length: ${big}`], 401],
      ["an unknown route", () => ["PUT /_api/v1/nothing HTTP/1.1", host(), auth(), `content-length: ${big}`], 404],
    ];
    for (const [what, head, status] of cases) {
      it(`${what}: answered, then closed`, async () => {
        const c = await open(l.url);
        const chunked = head().includes("transfer-encoding: chunked");
        c.write(`${head().join("\r\n")}\r\n\r\n`);
        const part = Buffer.alloc(512 * 1024, 0x41);
        c.write(chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from("\r\n")]) : part);
        // The client keeps sending for a while, as Nix does with a big upload.
        const feeding = setInterval(() => {
          if (!c.socket.destroyed) c.write(chunked ? Buffer.from(`10000\r\n${"B".repeat(0x10000)}\r\n`) : Buffer.alloc(0x10000, 0x42));
        }, 10);
        try {
          await c.closed(10_000);
        } finally {
          clearInterval(feeding);
        }
        expect(c.status(), c.text().slice(0, 300)).toBe(status);
        expect(c.text()).toMatch(/connection: close/i);
      });
    }

    it("a short remainder is drained and the connection serves the next request", async () => {
      const c = await open(l.url);
      const narinfo = Buffer.alloc(2000, 0x41);
      c.write([`PUT /c/${"1".repeat(32)}.narinfo HTTP/1.1`, host(), `authorization: Bearer ${pullOnly}`, `content-length: ${narinfo.length}`, "", ""].join("\r\n"));
      c.write(narinfo.subarray(0, 1000));
      await until("the 403", () => c.status() !== 0);
      expect(c.status()).toBe(403);
      c.write(narinfo.subarray(1000));
      c.write([`GET /c/nix-cache-info HTTP/1.1`, host(), auth(), "", ""].join("\r\n"));
      await until("the second answer", () => c.text().includes("StoreDir: /nix/store"), 5000);
      c.socket.destroy();
    });
  });

  it("refuses anonymous uploads before reading them: many connections holding partial bodies are answered and closed", async () => {
    const rssBefore = process.memoryUsage().rss;
    const conns = await Promise.all(
      Array.from({ length: 150 }, async () => {
        const c = await open(l.url);
        c.write(["PUT /_api/v1/upload-path HTTP/1.1", host(), "x-attic-nar-info-preamble-size: 1000000", "transfer-encoding: chunked", "", ""].join("\r\n"));
        c.write(`100000\r\n${"x".repeat(0x10000)}`);
        return c;
      }),
    );
    await Promise.all(conns.map((c) => c.closed(10_000)));
    for (const c of conns) expect(c.status()).toBe(401);
    // 150 × 1 MiB preambles were never buffered.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
  });

  it("closes a connection whose body stalls for longer than timeouts.body-idle, and cleans its spool", async () => {
    const nar = narOfFile(randomBytes(1024 * 1024));
    const c = await open(l.url);
    c.write([`PUT /c/nar/${nix32(nar)}.nar HTTP/1.1`, host(), auth(), `content-length: ${nar.length}`, "", ""].join("\r\n"));
    c.write(nar.subarray(0, 512 * 1024));
    await until("the spool file", async () => (await readdir(l.config.spoolDir)).length === 1);
    await c.closed(8000);
    await until("the spool to be empty", async () => (await readdir(l.config.spoolDir)).length === 0);
  });

  it("caps get-missing-paths at a documented number of hashes, naming it", async () => {
    const hashes = Array.from({ length: MAX_MISSING_PATHS_HASHES + 1 }, (_, i) => encodeNixBase32(createHash("sha256").update(String(i)).digest().subarray(0, 20)));
    const res = await fetch(`${l.url}/_api/v1/get-missing-paths`, {
      method: "POST",
      headers: { authorization: `Bearer ${push}`, "content-type": "application/json" },
      body: JSON.stringify({ cache: "c", store_path_hashes: hashes }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { message: string }).message).toMatch(new RegExp(`at most ${MAX_MISSING_PATHS_HASHES} store_path_hashes`));
    const ok = await fetch(`${l.url}/_api/v1/get-missing-paths`, {
      method: "POST",
      headers: { authorization: `Bearer ${push}`, "content-type": "application/json" },
      body: JSON.stringify({ cache: "c", store_path_hashes: hashes.slice(0, MAX_MISSING_PATHS_HASHES) }),
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { missing_paths: string[] }).missing_paths).toHaveLength(MAX_MISSING_PATHS_HASHES);
  });
});
