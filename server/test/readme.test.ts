/**
 * README.md as a new user follows it: the Quick start's first start of larderd, the commands its
 * banner prints, and the "Using a cache with Nix" blocks, run by bash exactly as written (only
 * cache.example.com becomes the test server) in a fresh HOME, with the real Nix 2.8 client at its
 * default settings (narinfo TTLs, no nix-command) on chroot stores. Push and pull share one
 * ~/.cache/nix, as on one machine.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, type TempDir } from "./support/tmp.ts";
import { freePort } from "./support/free-port.ts";
import { ISOLATED_NIX_CONF } from "./support/nix-conf.ts";
import { CLOSURE_NIX, closureSummary, type PathInfo } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const haveTools = requireTool("nix", "the README's recipe drives the real Nix client") && requireTool("jq", "the README's pull recipe reads the key with jq") && requireTool("curl", "the README's pull recipe uses curl");

/** The ```sh block after each `<!-- readme-test: NAME -->` marker. */
export function readmeBlocks(text: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const m of text.matchAll(/<!-- readme-test: ([a-z-]+) -->\n```sh\n([\s\S]*?)\n```/g)) blocks.set(m[1] as string, `${m[2]}\n`);
  return blocks;
}

interface Run {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.stdin.end(opts.input ?? "");
    child.on("close", (code) => resolve({ code, out }));
  });
}

describe.skipIf(!haveTools)("README.md, followed literally", () => {
  let tmp: TempDir;
  let env: NodeJS.ProcessEnv;
  let server: ChildProcess | undefined;
  let banner = "";
  let url: string;
  let port: number;
  let blocks: Map<string, string>;
  const state = () => join(tmp.path, "state.sh");

  /** Runs a README block with bash in `cwd`; variables it sets (TOKEN, KEY) carry over to the next block. */
  async function block(name: string, cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
    const text = blocks.get(name);
    if (text === undefined) throw new Error(`README.md has no block marked readme-test: ${name}`);
    const body = text.replaceAll("https://cache.example.com", url).replaceAll("cache.example.com", "127.0.0.1");
    const script = `set -euo pipefail\n[ -f "$STATE" ] && . "$STATE"\n${body}\n{ declare -p TOKEN 2>/dev/null || true; declare -p KEY 2>/dev/null || true; } > "$STATE"\n`;
    return run("bash", ["-c", script], { cwd, env: { ...env, ...extraEnv, STATE: state() } });
  }

  beforeAll(async () => {
    if (!haveTools) return;
    tmp = await makeTempDir("readme");
    blocks = readmeBlocks(await readFile(join(ROOT, "README.md"), "utf8"));
    const conf = join(tmp.path, "etc-nix");
    await mkdir(conf, { recursive: true });
    // The machine's /etc/nix: chroot-store builds and no nix-command, as Nix ships; no netrc.
    await writeFile(join(conf, "nix.conf"), ISOLATED_NIX_CONF.replace(/^experimental-features.*\n/m, ""));
    await mkdir(join(tmp.path, "home"));
    await mkdir(join(tmp.path, "work"));
    // A user's environment: no XDG_* overrides, no npm_* from the runner that started the tests.
    env = {
      PATH: process.env.PATH,
      HOME: join(tmp.path, "home"),
      NIX_CONF_DIR: conf,
      NIX_STATE_DIR: join(tmp.path, "nix-state"),
      NIX_LOG_DIR: join(tmp.path, "nix-log"),
    };
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Quick start: `npm start` with another address.
    server = spawn("npm", ["start", "--", "--listen", `127.0.0.1:${port}`], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    server.stdout?.on("data", (d: Buffer) => (banner += d.toString()));
    server.stderr?.on("data", (d: Buffer) => (banner += d.toString()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const up = await fetch(`${url}/_api/v1/health`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`larderd did not start:\n${banner}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 90_000);

  afterAll(async () => {
    if (server?.pid !== undefined && server.exitCode === null) {
      const exited = new Promise((r) => server?.once("exit", r));
      process.kill(-server.pid, "SIGTERM");
      await exited;
    }
    await tmp?.cleanup();
  });

  it.skipIf(!haveTools)("first start: the banner's commands work as printed, from the checkout", async () => {
    const token = /^ {2}(eyJ[\w-]+\.[\w-]+\.[\w-]+)$/m.exec(banner)?.[1];
    expect(token, banner).toBeDefined();
    const commands = banner.split("\n").filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim()).filter((l) => !l.startsWith("eyJ") && !l.startsWith("/"));
    expect(commands).toEqual([
      `npx larder login local http://localhost:${port}/ ${token}`,
      "npx larder cache create hello",
      "npx larder push hello ./result",
    ]);
    expect(banner).toContain(`nix copy --to http://localhost:${port}/_push/hello ./result`);
    expect(banner).toContain("npm link -w server puts larder and larderd on PATH");
    for (const line of commands.slice(0, 2)) {
      const r = await run("bash", ["-c", line], { cwd: ROOT, env });
      expect(r.code, `${line}\n${r.out}`).toBe(0);
    }
    const info = await run("bash", ["-c", "npx larder cache info hello"], { cwd: ROOT, env });
    expect(info.out).toMatch(/Public Key: hello:/);
    expect(info.out).toContain(`Nix Push Endpoint: http://localhost:${port}/_push/hello`);
    // Hints name the commands as this user runs them.
    const unknown = await run("bash", ["-c", "npx larder cache info elsewhere:hello"], { cwd: ROOT, env });
    expect(unknown.code).not.toBe(0);
    expect(unknown.out).toContain("add it with: npx larder login elsewhere URL");
  }, 60_000);

  it.skipIf(!haveTools)("npm link -w server installs larder and larderd that run with whatever node is on PATH", async () => {
    const prefix = join(tmp.path, "npm-prefix");
    const link = await run("npm", ["link", "-w", "server", "--no-audit", "--no-fund"], { cwd: ROOT, env: { ...env, NPM_CONFIG_PREFIX: prefix } });
    expect(link.code, link.out).toBe(0);
    // A shell without the checkout's node_modules/.bin: `node` is the system's, whatever its version.
    const path = [join(prefix, "bin"), ...(process.env.PATH ?? "").split(":").filter((d) => !d.includes("node_modules"))].join(":");
    for (const [cmd, expected] of [["larder", /Usage: larder /], ["larderd", /Usage: larderd /]] as const) {
      const r = await run(cmd, ["--help"], { cwd: tmp.path, env: { ...env, PATH: path } });
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(expected);
    }
  }, 60_000);

  it.skipIf(!haveTools)("push with Nix alone, then pull on the same machine: the commands as written", async () => {
    const server = await block("server", ROOT);
    expect(server.code, server.out).toBe(0);
    // The user's ./result: a closure built into the machine's store (a chroot store here).
    const work = join(tmp.path, "work");
    const src = join(tmp.path, "store-built");
    await writeFile(join(tmp.path, "closure.nix"), CLOSURE_NIX);
    const built = await run("nix-build", ["--store", src, join(tmp.path, "closure.nix"), "--argstr", "nonce", String(Date.now()), "-o", join(work, "result")], { cwd: work, env });
    expect(built.code, built.out).toBe(0);

    const push = await block("push", work, { NIX_CONFIG: `store = ${src}` });
    expect(push.code, push.out).toBe(0);
    const dst = join(tmp.path, "store-pulled");
    const pull = await block("pull", work, { NIX_CONFIG: `store = ${dst}` });
    expect(pull.code, pull.out).toBe(0);

    const top = built.out.trim().split("\n").at(-1) as string;
    const infos = async (store: string) => {
      const r = await run("nix", ["--extra-experimental-features", "nix-command", "--store", store, "path-info", "-r", "--json", top], { cwd: work, env });
      expect(r.code, r.out).toBe(0);
      return JSON.parse(r.out) as PathInfo[];
    };
    const pulled = await infos(dst);
    expect(closureSummary(pulled)).toEqual(closureSummary(await infos(src)));
    expect(pulled.every((p) => p.signatures?.some((s) => s.startsWith("main:")))).toBe(true);
  }, 120_000);
});
