/** larderd as users run it: first start, restarts, check-config, make-token, create-cache. */
import { spawn, execFile } from "node:child_process";
import { stat, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { makeTempDir, type TempDir } from "./support/tmp.ts";
import { freePort } from "./support/free-port.ts";

const BIN = new URL("../bin/larderd.js", import.meta.url).pathname;
const run = promisify(execFile);


function envFor(dir: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: join(dir, "home"), XDG_CONFIG_HOME: join(dir, "config"), XDG_DATA_HOME: join(dir, "data") };
}

/** Starts larderd and resolves once it listens, with everything it printed so far. */
function startDaemon(args: string[], env: NodeJS.ProcessEnv): Promise<{ output: () => string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`larderd did not start:\n${out}`)), 20_000);
    child.on("exit", (code) => reject(new Error(`larderd exited with ${code}:\n${out}`)));
    const check = setInterval(() => {
      if (out.includes("larderd listening")) {
        clearInterval(check);
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolve({
          output: () => out,
          stop: () =>
            new Promise((done) => {
              child.on("exit", () => done());
              child.kill("SIGTERM");
            }),
        });
      }
    }, 50);
  });
}

describe("larderd command line", () => {
  let dir: TempDir | undefined;
  afterEach(async () => {
    await dir?.cleanup();
  });

  it("writes its config on first start, prints a working root token, and reuses both on restart", async () => {
    dir = await makeTempDir("cli");
    const env = envFor(dir.path);
    const port = await freePort();
    const first = await startDaemon(["--listen", `127.0.0.1:${port}`], env);
    const printed = first.output();
    const token = /^ {2}(eyJ[\w-]+\.[\w-]+\.[\w-]+)$/m.exec(printed)?.[1];
    expect(token, printed).toBeDefined();
    expect(printed).toContain(`larder login local http://localhost:${port}/ ${token}`);
    const configFile = join(dir.path, "config", "larder", "server.toml");
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    const config = await readFile(configFile, "utf8");
    expect(config).toContain(`sqlite://${join(dir.path, "data", "larder", "server.db")}`);
    const claims = decodeJwt(token as string);
    expect(claims.sub).toBe("root");
    expect(claims["https://jwt.attic.rs/v1"]).toEqual({ caches: { "*": { r: 1, w: 1, d: 1, cc: 1, cr: 1, cq: 1, cd: 1, dp: 1 } } });

    const create = await fetch(`http://127.0.0.1:${port}/_api/v1/cache-config/first`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
    });
    expect(create.status).toBe(200);
    await first.stop();

    const second = await startDaemon(["--listen", `127.0.0.1:${port}`], env);
    expect(second.output()).not.toContain("Welcome");
    expect(await readFile(configFile, "utf8")).toBe(config);
    const info = await fetch(`http://127.0.0.1:${port}/first/nix-cache-info`, { headers: { authorization: `Bearer ${token}` } });
    expect(info.status).toBe(200);
    await second.stop();
  });

  it("check-config accepts a valid config and rejects a bad one, naming the key", async () => {
    dir = await makeTempDir("cli");
    const good = join(dir.path, "good.toml");
    await writeFile(good, `[database]\nurl = "sqlite://${dir.path}/db"\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 1).toString("base64")}"\n`);
    const ok = await run(process.execPath, [BIN, "--config", good, "--mode", "check-config"], { env: envFor(dir.path) });
    expect(ok.stdout).toContain("configuration is valid");
    const bad = join(dir.path, "bad.toml");
    await writeFile(bad, `${await readFile(good, "utf8")}\n[compression]\ntype = "lz4"\n`);
    const err = await run(process.execPath, [BIN, "--config", bad, "--mode", "check-config"], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toMatch(/compression\.type/);
    expect((err as { stderr: string }).stderr).not.toMatch(/\n\s+at /);
    const missing = await run(process.execPath, [BIN, "--config", join(dir.path, "nope.toml"), "--mode", "check-config"], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
    expect((missing as { stderr: string }).stderr).toMatch(/cannot read config .*nope\.toml: no such file/);
    // Broken TOML says where (issue 14.4).
    const broken = join(dir.path, "broken.toml");
    await writeFile(broken, `listen = "[::]:8080"\n[storage]\ntype = "local\npath = "/x"\n`);
    const syntax = await run(process.execPath, [BIN, "--config", broken, "--mode", "check-config"], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
    expect((syntax as { stderr: string }).stderr).toMatch(/broken\.toml: server\.toml is not valid TOML: line 3, column \d+: /);
  });

  it("says what to do when the port is taken (issue 14.4)", async () => {
    dir = await makeTempDir("cli");
    const cfg = join(dir.path, "s.toml");
    await writeFile(cfg, `[database]\nurl = "sqlite://${dir.path}/db"\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 1).toString("base64")}"\n`);
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const err = await run(process.execPath, [BIN, "--config", cfg, "--listen", `127.0.0.1:${port}`], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
      expect(err).toMatchObject({ code: 1 });
      expect((err as { stderr: string }).stderr).toContain(`cannot listen on 127.0.0.1:${port}: the port is already in use (another larderd or service); choose another address with --listen HOST:PORT`);
      expect((err as { stderr: string }).stderr).not.toMatch(/\n\s+at |EADDRINUSE/);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it("make-token prints a token on its last line with attic's claims, or the claims with --dump-claims", async () => {
    dir = await makeTempDir("cli");
    const cfg = join(dir.path, "s.toml");
    await writeFile(cfg, `[database]\nurl = "sqlite://${dir.path}/db"\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 1).toString("base64")}"\n`);
    const args = ["make-token", "--config", cfg, "--sub", "ci", "--validity", "3 months", "--pull", "team-*", "--push", "team-*", "--pull", "public", "--create-cache", "team-*"];
    const { stdout } = await run(process.execPath, [BIN, ...args], { env: envFor(dir.path) });
    const token = stdout.trim().split("\n").at(-1) as string;
    const claims = decodeJwt(token);
    expect(claims.sub).toBe("ci");
    expect((claims.exp as number) - (claims.nbf as number)).toBe(7_890_048);
    expect(claims["https://jwt.attic.rs/v1"]).toEqual({ caches: { "team-*": { r: 1, w: 1, cc: 1 }, public: { r: 1 } } });
    const dumped = await run(process.execPath, [BIN, ...args, "--dump-claims"], { env: envFor(dir.path) });
    expect(JSON.parse(dumped.stdout)).toMatchObject({ sub: "ci", "https://jwt.attic.rs/v1": { caches: { public: { r: 1 } } } });
    const bad = await run(process.execPath, [BIN, "make-token", "--config", cfg, "--sub", "x", "--validity", "forever"], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { stderr: string }).stderr).toMatch(/--validity: cannot parse duration "forever"/);
    // The rules `just token` applies too (scripts/test/commands.test.ts): no grant-nothing tokens, valid patterns.
    const refusals: [string[], string][] = [
      [["--sub", "x", "--validity", "1y"], "the token would grant nothing: add at least one of --pull, --push"],
      [["--sub", "x", "--validity", "1y", "--push", "bad/name"], '--push "bad/name" is not a cache name pattern'],
      [["--sub", "x", "--validity", "0s", "--pull", "a"], '--validity "0s" is zero'],
    ];
    for (const [flags, message] of refusals) {
      const r = await run(process.execPath, [BIN, "make-token", "--config", cfg, ...flags], { env: envFor(dir.path) }).catch((e: { code: number; stderr: string }) => e);
      expect((r as { code: number }).code).not.toBe(0);
      expect((r as { stderr: string }).stderr).toContain(message);
    }
  });
});
