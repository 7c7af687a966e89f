/**
 * Every script checks its preconditions before acting, and a failed one is a single line that
 * names the script, what is missing and how to get it — with a non-zero exit.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { scratchRoot, script, tempDir } from "./helpers.ts";

/** A PATH with nothing on it: no ssh, tofu, terraform or npm. */
const EMPTY_PATH = () => tempDir();

function oneLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  return lines[0] as string;
}

describe("preflight", () => {
  it("plan/deploy/destroy without tofu or terraform", () => {
    for (const action of ["plan", "deploy", "destroy"]) {
      const r = script("tf.ts", [action], { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot(["larder"]) });
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toBe("tf: neither tofu nor terraform is on PATH: install OpenTofu (https://opentofu.org/docs/intro/install/) or Terraform");
    }
  });

  it("synth without npm", () => {
    const r = script("tf.ts", ["synth"], { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot() });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^tf: npm is not on PATH: /);
  });

  it("an unknown action", () => {
    const r = script("tf.ts", ["apply-everything"], { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot() });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe('tf: unknown action "apply-everything": use synth, plan, deploy, destroy');
  });

  it("host scripts with no synthesized stack say to synth or pass --host", () => {
    for (const name of ["gc-once.ts", "cache-create.ts", "make-token.ts"]) {
      const args = name === "cache-create.ts" ? ["main"] : name === "make-token.ts" ? ["--sub", "ci", "--pull", "main"] : [];
      const r = script(name, args, { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot() });
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toMatch(/no synthesized stack in .*cdktf.out\/stacks: run `just synth`.*, or pass --host HOST$/);
    }
  });

  it("a synthesized but never deployed stack has no outputs", () => {
    const r = script("gc-once.ts", [], { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot(["larder"]) });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/stacks\/larder was never initialised, so it has no outputs: run `just deploy` first, or pass --host HOST$/);
  });

  it("several stacks need --stack", () => {
    const root = scratchRoot(["prod", "staging"]);
    const r = script("gc-once.ts", [], { PATH: EMPTY_PATH(), LARDER_ROOT: root });
    expect(oneLine(r.stderr)).toMatch(/several stacks in .* \(prod, staging\): pass --stack NAME/);
    const named = script("gc-once.ts", ["--stack", "qa"], { PATH: EMPTY_PATH(), LARDER_ROOT: root });
    expect(oneLine(named.stderr)).toMatch(/stack "qa" is not synthesized .* \(found: prod, staging\): run `just synth`/);
  });

  it("gc-once, token and ssh with --host but no ssh client", () => {
    const cases: [string, string[]][] = [
      ["gc-once.ts", ["--host", "203.0.113.7"]],
      ["make-token.ts", ["--host", "203.0.113.7", "--sub", "ci", "--pull", "main"]],
      ["ssh.ts", ["--host", "203.0.113.7"]],
    ];
    for (const [name, args] of cases) {
      const r = script(name, args, { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot() });
      expect(r.code, name).toBe(1);
      expect(oneLine(r.stderr)).toMatch(/: ssh is not on PATH: install the OpenSSH client \(apt-get install openssh-client\)$/);
    }
  });

  it("adopt-host without hosts in the recipients config, and without ssh-keyscan", () => {
    const root = scratchRoot();
    mkdirSync(join(root, "secrets"));
    const write = (json: object) => writeFileSync(join(root, "secrets", "recipients.json"), JSON.stringify(json));
    write({ people: {}, hosts: {}, groups: {}, secrets: {} });
    let r = script("adopt-host.ts", ["--host", "203.0.113.7"], { PATH: EMPTY_PATH(), LARDER_ROOT: root });
    expect(oneLine(r.stderr)).toBe('adopt-host: secrets/recipients.json lists no hosts: add one under "hosts" first');
    write({ hosts: { larder: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb0s1lH4Ww7mA9y0NfS1cT3sJ1d1nXh0r4oY9N0Wv1e" } });
    r = script("adopt-host.ts", ["--host", "203.0.113.7"], { PATH: EMPTY_PATH(), LARDER_ROOT: root });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^adopt-host: ssh-keyscan is not on PATH: install the OpenSSH client/);
  });

  it("vpc-sg-cleanup with neither VPC_ID nor stack outputs", () => {
    const r = script("vpc-sg-cleanup.ts", [], { PATH: EMPTY_PATH(), LARDER_ROOT: scratchRoot() });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^vpc-sg-cleanup: no VPC_ID given and no synthesized stack .*run `just synth`/);
  });
});
