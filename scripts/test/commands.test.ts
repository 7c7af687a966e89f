/** The pure parts of the host scripts: command lines, quoting, and parsing what comes back. */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createCacheCommand } from "../src/cache-create.ts";
import { makeTokenCommand } from "../src/make-token.ts";
import { terraformArgs } from "../src/tf.ts";
import { formatGcSummary, parseGcSummary } from "../src/lib/gc-summary.ts";
import { keyFromConsole, keyFromKeyscan } from "../src/lib/host-key.ts";
import { shellQuote, sshArgs } from "../src/lib/remote.ts";
import { parseOutputs } from "../src/lib/stack.ts";
import { hostEntry } from "../src/adopt-host.ts";
import { REPO } from "./helpers.ts";

describe("remote command quoting", () => {
  it("arguments reach the remote command exactly, through a real POSIX shell", () => {
    const tricky = ["*", "a b", "it's", "$HOME", "`id`", "x;y", "new\nline", "", "--pull", "\\"];
    const line = ["printf", "%s\\0", ...tricky].map(shellQuote).join(" ");
    const out = spawnSync("sh", ["-c", line], { encoding: "utf8", cwd: REPO });
    expect(out.stdout.split("\0").slice(0, -1)).toEqual(tricky);
  });

  it("ssh gets options, destination, --, and one quoted command string", () => {
    expect(sshArgs({ host: "203.0.113.7", user: "root", sshOptions: ["-p2222"] }, ["larderd-admin", "create-cache", "main"])).toEqual([
      "-p2222",
      "root@203.0.113.7",
      "--",
      "'larderd-admin' 'create-cache' 'main'",
    ]);
    expect(sshArgs({ host: "h", user: "root", sshOptions: [] }, [])).toEqual(["root@h"]);
    expect(() => sshArgs({ host: "-oProxyCommand=x", user: "root", sshOptions: [] }, [])).toThrow(/invalid host/);
  });
});

describe("admin wrapper commands", () => {
  it("make-token passes each pattern as its own argument", () => {
    expect(makeTokenCommand({ sub: "ci", validity: "1y", patterns: { pull: ["main", "*"], push: ["main"], "create-cache": ["team-*"] } })).toEqual([
      "larderd-admin", "make-token", "--sub", "ci", "--validity", "1y",
      "--pull", "main", "--pull", "*", "--push", "main", "--create-cache", "team-*",
    ]);
    expect(() => makeTokenCommand({ sub: "ci", validity: "1y", patterns: {} })).toThrow(/would grant nothing/);
  });

  it("make-token applies larderd make-token's own rules (issue 14.7)", () => {
    // Durations with spaces, as larderd and attic take them, pass through as one argument.
    expect(makeTokenCommand({ sub: "ci", validity: "3 months", patterns: { pull: ["main"] } })).toEqual([
      "larderd-admin", "make-token", "--sub", "ci", "--validity", "3 months", "--pull", "main",
    ]);
    expect(makeTokenCommand({ sub: "ci", validity: "1y 6 months", patterns: { "destroy-cache": ["tmp-*"] } })).toContain("1y 6 months");
    // The refusals larderd make-token gives, word for word (server/test/cli.test.ts checks larderd's side).
    expect(() => makeTokenCommand({ sub: "ci", validity: "forever", patterns: { pull: ["main"] } })).toThrow('--validity: cannot parse duration "forever"');
    expect(() => makeTokenCommand({ sub: "ci", validity: "0s", patterns: { pull: ["main"] } })).toThrow('--validity "0s" is zero');
    expect(() => makeTokenCommand({ sub: "ci", validity: "1y", patterns: { push: ["bad/name"] } })).toThrow('--push "bad/name" is not a cache name pattern');
    expect(() => makeTokenCommand({ sub: "ci", validity: "1y", patterns: { pull: [] } })).toThrow("the token would grant nothing: add at least one of --pull, --push");
  });

  it("cache-create validates the name and priority", () => {
    expect(createCacheCommand({ name: "main", public: true, priority: "30", upstreamKeyNames: ["cache.nixos.org-1"] })).toEqual([
      "larderd-admin", "create-cache", "main", "--public", "--priority", "30", "--upstream-cache-key-name", "cache.nixos.org-1",
    ]);
    expect(() => createCacheCommand({ name: "Main Cache", public: false, upstreamKeyNames: [] })).toThrow(/must be lower-case/);
    expect(() => createCacheCommand({ name: "main", public: false, priority: "high", upstreamKeyNames: [] })).toThrow(/not a whole number/);
  });

  it("tf maps actions, and --dry-run turns deploy and destroy into plans", () => {
    expect(terraformArgs("deploy", false, ["-auto-approve"])).toEqual(["apply", "-input=false", "-auto-approve"]);
    expect(terraformArgs("deploy", true, [])).toEqual(["plan", "-input=false"]);
    expect(terraformArgs("destroy", true, [])).toEqual(["plan", "-destroy", "-input=false"]);
    expect(terraformArgs("destroy", false, [])).toEqual(["destroy", "-input=false"]);
  });
});

describe("parsing what comes back", () => {
  it("the GC summary line", () => {
    const s = parseGcSummary('{"objects":12,"nars":9,"storage_objects":9,"bytes_freed":73400320,"duration_ms":5120}');
    expect(formatGcSummary(s)).toBe(
      ["objects removed:         12", "NARs removed:            9", "storage objects deleted: 9", "space freed:             70.0 MiB", "took:                    5.1 s"].join("\n"),
    );
    expect(() => parseGcSummary("GC done")).toThrow(/did not end with a JSON summary/);
    expect(() => parseGcSummary('{"objects":1,"nars":1,"storage_objects":1,"bytes_freed":1}')).toThrow(/bad duration_ms/);
    // A newer server may add counts; the known ones still parse.
    expect(parseGcSummary('{"objects":1,"nars":1,"storage_objects":1,"bytes_freed":1,"duration_ms":1,"x":2}')).toMatchObject({ objects: 1 });
  });

  it("the summary the real larderd prints after a one-shot GC", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gc-summary-"));
    try {
      const config = join(dir, "server.toml");
      writeFileSync(config, `[database]\nurl = "sqlite://${dir}/db"\n[storage]\ntype = "local"\npath = "${dir}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 3).toString("base64")}"\n`);
      const { stdout } = await promisify(execFile)(process.execPath, [join(REPO, "server/bin/larderd.js"), "--config", config, "--mode", "garbage-collector-once"]);
      const s = parseGcSummary(stdout.trim().split("\n").at(-1) as string);
      expect(s).toMatchObject({ objects: 0, nars: 0, storage_objects: 0, bytes_freed: 0, staged_expired: 0 });
      expect(formatGcSummary(s)).toContain("objects removed:");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stack outputs as `terraform output -json` prints them (captured from Terraform 1.11)", () => {
    const outputs = parseOutputs(readFileSync(join(REPO, "scripts/test/terraform-output.json"), "utf8"));
    expect(outputs).toEqual({
      url: "https://cache.example.org",
      public_ip: "203.0.113.7",
      instance_id: "i-0123456789abcdef0",
      vpc_id: "vpc-0a1b2c3d4e5f60718",
      bucket: "larder-cache-example",
      database_endpoint: "larder.abcdefghij.eu-west-1.rds.amazonaws.com:5432",
      region: "eu-west-1",
    });
    expect(parseOutputs("{}")).toEqual({});
    expect(() => parseOutputs("Warning: no outputs")).toThrow(/did not print JSON/);
  });

  it("host keys from ssh-keyscan and from the EC2 console", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb0s1lH4Ww7mA9y0NfS1cT3sJ1d1nXh0r4oY9N0Wv1e";
    expect(keyFromKeyscan(`# 203.0.113.7:22 SSH-2.0-OpenSSH_9.6\n203.0.113.7 ${key}\n`, "203.0.113.7")).toBe(key);
    expect(() => keyFromKeyscan("", "203.0.113.7")).toThrow(/no ssh-ed25519 host key from 203.0.113.7.*--from-console/);
    const console = [
      "[    5.1] systemd[1]: Started sshd.service",
      "-----BEGIN SSH HOST KEY KEYS-----",
      "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC root@larder",
      `${key} root@larder`,
      "-----END SSH HOST KEY KEYS-----",
    ].join("\r\n");
    expect(keyFromConsole(console, "i-0123")).toBe(key);
    expect(() => keyFromConsole("booting…", "i-0123")).toThrow(/has no host key block yet/);
  });

  it("adopt-host picks the host entry", () => {
    const json = JSON.stringify({ hosts: { larder: "ssh-ed25519 AAAA" } });
    expect(hostEntry(json)).toEqual({ name: "larder", keys: ["ssh-ed25519 AAAA"] });
    expect(() => hostEntry(JSON.stringify({ hosts: { a: "x", b: "y" } }))).toThrow(/several hosts \(a, b\): pass --name NAME/);
    expect(() => hostEntry(json, "other")).toThrow(/"other" is not a host/);
  });
});
