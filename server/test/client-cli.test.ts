/**
 * The client's commands and failure modes: every bad input is one clear line and a non-zero
 * exit; cache create|configure|info|destroy speak attic's JSON; uploads are retried through a
 * flaky proxy answering 503 and dropping connections; watch-store pushes what gets built.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { LARDER_BIN, larderCli, oneLineError, type RunResult } from "./support/client.ts";

const haveNix = requireTool("nix", "the client drives the real Nix client");
const haveScript = haveNix && requireTool("script", "util-linux's script gives the client a terminal to draw progress bars on");
const shQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

function ok(r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`larder exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r;
}

/** Forwards to larderd, but fails the first `failures` upload-path requests (503, then a reset). */
async function flakyProxy(target: string, failures: number) {
  let failed = 0;
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    if (req.url === "/_api/v1/upload-path" && failed < failures) {
      failed++;
      if (failed % 2 === 1) {
        req.resume();
        req.on("end", () => res.writeHead(503, { "content-type": "application/json" }).end('{"code":503,"error":"ServiceUnavailable","message":"try later"}'));
      } else {
        req.once("data", () => req.socket.destroy());
      }
      return;
    }
    const fwd = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, failed: () => failed, close: () => new Promise((r) => server.close(r)) };
}

describe.skipIf(!haveNix)("larder client commands and errors", () => {
  let l: Larder;
  let nix: NixEnv;
  let larder: ReturnType<typeof larderCli>;
  let token: string;

  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    nix = await createNixEnv();
    larder = larderCli(nix.env);
    token = await l.token({ pull: ["c", "team-*"], push: ["c", "team-*"], createCache: ["team-*"], configureCache: ["team-*"], destroyCache: ["team-*"] }, "dev");
    await createTestCache(l, "c");
    ok(await larder(["login", "main", l.url, token]));
  });
  afterAll(async () => {
    await l?.stop();
    await nix?.cleanup();
  });

  it("fails with one clear line for each bad input", async () => {
    const top = await nix.buildClosure(`bad-${randomBytes(4).toString("hex")}`);
    const store = ["--store", nix.src];
    expect(oneLineError(await larder(["push", "nowhere:c", top, ...store]))).toMatch(/unknown server "nowhere" \(configured: main\).*larder login nowhere/);
    ok(await larder(["login", "wrong", l.url, "not.a.token"]));
    expect(oneLineError(await larder(["push", "wrong:c", top, ...store]))).toMatch(/server "wrong" refused the token: token is malformed; log in with a new one: larder login wrong/);
    // Each 401 says which of the three it is (issue 14.4): expired, none sent, other caches.
    ok(await larder(["login", "expired", l.url, await l.token({ pull: ["c"], push: ["c"] }, "dev", -60)]));
    expect(oneLineError(await larder(["push", "expired:c", top, ...store]))).toMatch(/server "expired" refused the token: token expired; log in with a new one/);
    ok(await larder(["login", "anon", l.url]));
    expect(oneLineError(await larder(["push", "anon:c", top, ...store]))).toMatch(/server "anon" needs a token for cache "c" and none is configured; log in with: larder login anon/);
    ok(await larder(["login", "scoped", l.url, await l.token({ pull: ["team-*", "main"] }, "dev")]));
    expect(oneLineError(await larder(["cache", "info", "scoped:c"]))).toMatch(/the token of server "scoped" does not cover cache "c": it grants nothing on cache "c"; it covers "team-\*", "main"/);
    // https:// against this plain-HTTP server: a sentence, not OpenSSL's "wrong version number".
    const tls = l.url.replace(/^http:/, "https:");
    ok(await larder(["login", "tls", tls, token]));
    const tlsError = oneLineError(await larder(["cache", "info", "tls:c"]));
    expect(tlsError).toMatch(/cannot reach server "tls" at https:\/\/127\.0\.0\.1:\d+\/: it speaks plain HTTP, not https; use http:\/\/127\.0\.0\.1:\d+\//);
    expect(tlsError).not.toMatch(/SSL|ssl3|version number/);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    ok(await larder(["login", "down", `http://127.0.0.1:${port}/`, token]));
    expect(oneLineError(await larder(["push", "down:c", top, ...store]))).toMatch(new RegExp(`cannot reach server "down" at http://127\\.0\\.0\\.1:${port}/: connection refused`));
    expect(oneLineError(await larder(["push", "c", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-missing", ...store]))).toMatch(/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-missing.*(not valid|does not exist|is not)/);
    expect(oneLineError(await larder(["push", "c", "/etc/hostname", ...store]))).toMatch(/\/etc\/hostname.*not in the Nix store/);
    expect(oneLineError(await larder(["push", "bad name!", top, ...store]))).toMatch(/invalid cache name "bad name!"/);
    expect(oneLineError(await larder(["cache", "info", "team-nope"]))).toMatch(/cache "team-nope" does not exist on server "main".*larder cache create team-nope/);
    expect(oneLineError(await larder(["push", "c"]))).toMatch(/no paths to push/);
    expect(oneLineError(await larder(["login", "x", "ftp://example/"]))).toMatch(/not an http\(s\) URL/);
    expect(oneLineError(await larder(["push", "c", top, "-j", "zero"]))).toMatch(/--jobs must be a whole number/);
    expect(oneLineError(await larder(["frobnicate"]))).toMatch(/unknown command/);
    const other = larderCli({ ...nix.env, HOME: nix.dir.path + "/nohome" });
    expect(oneLineError(await other(["push", "c", top]))).toMatch(/no server is configured; log in first/);
  });

  it("creates, configures, shows and destroys caches with attic's flags", async () => {
    const created = ok(await larder(["cache", "create", "team-x", "--public", "--priority", "30", "--upstream-cache-key-name", "a-1", "--upstream-cache-key-name", "b-1"]));
    expect(created.stdout).toMatch(/created cache "team-x" \(public\); its public key: team-x:/);
    let info = ok(await larder(["cache", "info", "team-x"])).stdout;
    expect(info).toMatch(/^ {15}Public: true$/m);
    expect(info).toMatch(/Priority: 30$/m);
    expect(info).toMatch(/Upstream Cache Keys: \["a-1","b-1"\]$/m);
    expect(info).toMatch(/Retention Period: Global Default$/m);
    // Durations in words, singular for one (issue 14.4: was "1 seconds").
    ok(await larder(["login", "root", l.url, l.rootToken]));
    ok(await larder(["cache", "configure", "root:team-x", "--retention-period", "1s"]));
    expect(ok(await larder(["cache", "info", "root:team-x"])).stdout).toMatch(/Retention Period: 1 second$/m);
    ok(await larder(["cache", "configure", "root:team-x", "--retention-period", "3 months"]));
    expect(ok(await larder(["cache", "info", "root:team-x"])).stdout).toMatch(/Retention Period: 3 months$/m);
    ok(await larder(["cache", "configure", "root:team-x", "--reset-retention-period"]));
    const key = /Public Key: (\S+)/.exec(info)?.[1];
    // No `cq` right in this token: configuring without a retention change still works.
    ok(await larder(["cache", "configure", "team-x", "--private", "--priority", "50", "--upstream-cache-key-name", "", "--regenerate-keypair"]));
    info = ok(await larder(["cache", "info", "team-x"])).stdout;
    expect(info).toMatch(/Public: false$/m);
    expect(info).toMatch(/Upstream Cache Keys: \[\]$/m);
    expect(/Public Key: (\S+)/.exec(info)?.[1]).not.toBe(key);
    expect(oneLineError(await larder(["cache", "configure", "team-x", "--retention-period", "30 days"]))).toMatch(/permission denied.*"configure-cache-retention"/);
    expect(oneLineError(await larder(["cache", "configure", "team-x"]))).toMatch(/nothing to change/);
    expect(oneLineError(await larder(["cache", "destroy", "team-x"]))).toMatch(/without confirmation.*--no-confirm/);
    ok(await larder(["cache", "destroy", "team-x", "--no-confirm"]));
    expect(oneLineError(await larder(["cache", "info", "team-x"]))).toMatch(/does not exist/);
  });

  it("retries uploads after 503 answers and dropped connections", async () => {
    const proxy = await flakyProxy(l.url, 3);
    try {
      ok(await larder(["login", "flaky", proxy.url, token]));
      const top = await nix.buildClosure(`flaky-${randomBytes(4).toString("hex")}`);
      const r = ok(await larder(["push", "flaky:c", top, "--store", nix.src, "-j", "1"]));
      expect(proxy.failed()).toBe(3);
      for (const n of [2, 3, 4]) expect(r.stderr).toMatch(new RegExp(`retrying .* \\(attempt ${n}\\)`));
      expect(r.stdout).toMatch(/pushed 3 of 3 paths/);
    } finally {
      await proxy.close();
    }
  });

  it.skipIf(!haveScript)("draws progress bars on a terminal", async () => {
    const top = await nix.buildClosure(`tty-${randomBytes(4).toString("hex")}`);
    const command = [process.execPath, LARDER_BIN, "push", "c", top, "--store", nix.src].map(shQuote).join(" ");
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...nix.env, COLUMNS: "100", TERM: "xterm" }, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.on("exit", (code) => resolve({ code, out }));
    });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/\x1b\[\d+A\x1b\[J/);
    expect(r.out).toMatch(/\[[#-]{30}\] \d\/3 paths, [\d.]+ \w+\/[\d.]+ \w+, [\d.]+ \w+\/s/);
    expect(r.out).toMatch(/pushed 3 of 3 paths to "c"/);
    // What stays on the screen once the bars are gone: attic's line per path, with its speed.
    const kept = r.out.replace(/\x1b\[\d+A\x1b\[J/g, "\n").split(/\r?\n/).filter((x) => x.startsWith("✅ "));
    expect(kept).toHaveLength(3);
    for (const line of kept) expect(line).toMatch(/^✅ \/nix\/store\/\S+ \(\d+\.\d\d (B|KiB|MiB|GiB)\/s\)$/);
    expect(kept.some((x) => x.startsWith(`✅ ${top} (`))).toBe(true);
  });

  it("watch-store pushes paths as they are built, until interrupted", async () => {
    const child = spawn(process.execPath, [LARDER_BIN, "watch-store", "c", "--store", nix.src], { env: nix.env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!output.includes("watching") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const top = await nix.buildClosure(`watch-${randomBytes(4).toString("hex")}`);
      const hash = top.slice(11, 43);
      let status = 0;
      while (Date.now() < deadline + 20_000) {
        status = (await fetch(`${l.url}/c/${hash}.narinfo`, { headers: { authorization: `bearer ${token}` } })).status;
        if (status === 200) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(status, output).toBe(200);
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
    expect(output).toMatch(/pushed \d+ of \d+ paths to "c"/);
  });
});
