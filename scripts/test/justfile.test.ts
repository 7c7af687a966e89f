/** `just` is the binary from rust-just's npm packages (launched by scripts/bin/just.js), so `npx just --list` works after `npm ci`. */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "./helpers.ts";

const JUST = join(REPO, "node_modules", ".bin", "just");
const just = (args: string[]) => spawnSync(JUST, args, { cwd: REPO, encoding: "utf8" });

const REQUIRED = [
  "synth", "plan", "deploy", "destroy", "ssh", "secret-edit", "secrets-rekey", "adopt-host",
  "gc-once", "vpc-sg-cleanup", "token", "cache-create", "test",
];

describe("justfile", () => {
  it("lists every recipe, each with a description; bare `just` lists too", () => {
    const list = just(["--list"]);
    expect(list.status, list.stderr).toBe(0);
    for (const recipe of REQUIRED) expect(list.stdout).toMatch(new RegExp(`^ {4}${recipe}( \\*args)? +# \\S`, "m"));
    const bare = just([]);
    expect(bare.status).toBe(0);
    expect(bare.stdout.split("\n").sort()).toEqual(list.stdout.split("\n").sort());
  });

  it("each recipe runs one existing npm script or file, passing arguments through unsplit", () => {
    const dump = JSON.parse(just(["--dump", "--dump-format", "json"]).stdout) as {
      recipes: Record<string, { body: unknown[][] }>;
    };
    for (const recipe of REQUIRED) {
      const body = JSON.stringify(dump.recipes[recipe]?.body);
      const file = /(scripts\/src\/[\w-]+\.ts|secrets\/bin\/[\w-]+\.js)/.exec(body)?.[1];
      if (recipe === "test") expect(body).toContain("npm test");
      else expect(file && existsSync(join(REPO, file)), `${recipe}: ${body}`).toBe(true);
    }
    const dry = just(["--dry-run", "token", "--sub", "a b", "--pull", "*"]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stderr).toContain('scripts/src/make-token.ts "$@"');
  });

  it("just rollout runs `larder deploy activate --wait` with the arguments as given", () => {
    const dry = just(["--dry-run", "rollout", "main", "prod", "/nix/store/x y", "--canaries", "1"]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stderr).toContain('server/bin/larder.js deploy activate --wait "$@"');
    const help = spawnSync(process.execPath, [join(REPO, "server", "bin", "larder.js"), "deploy", "activate", "--help"], { encoding: "utf8" });
    expect(help.stdout).toContain("--wait");
  }, 60_000);

  it("runs on Node 24 through npm, on every platform (the pinned Node is an optional per-platform package)", () => {
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(24);
  });

  it("falls back to a just on PATH where npm installed none for the platform, skipping its own .bin link", () => {
    // Outside node_modules, rust-just-<platform> does not resolve: as on a platform without one.
    const dir = mkdtempSync(join(tmpdir(), "larder-just-"));
    try {
      const bin = join(dir, "bin");
      const tools = join(dir, "tools");
      mkdirSync(bin);
      mkdirSync(tools);
      copyFileSync(join(REPO, "scripts", "bin", "just.js"), join(dir, "just.js"));
      chmodSync(join(dir, "just.js"), 0o755);
      symlinkSync(join(dir, "just.js"), join(bin, "just"));
      const none = spawnSync(process.execPath, [join(bin, "just"), "--version"], { encoding: "utf8", env: { ...process.env, PATH: bin } });
      expect(none.status).toBe(127);
      expect(none.stderr).toMatch(/none on PATH; install just/);
      writeFileSync(join(tools, "just"), '#!/bin/sh\necho "system just $*"\n');
      chmodSync(join(tools, "just"), 0o755);
      const found = spawnSync(process.execPath, [join(bin, "just"), "--list"], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${tools}` } });
      expect(found.stderr).toBe("");
      expect(found.stdout).toBe("system just --list\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("just synth builds every stack and exits 0; only the actions on one stack need --stack", () => {
    const r = spawnSync(JUST, ["synth"], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const line = r.stderr.split("\n").find((l) => l.startsWith("synthesized /")) ?? "";
    expect(line.split(", ").length, r.stderr).toBeGreaterThan(1);
    expect(r.stderr).not.toContain("--stack");
  }, 150_000);
});
