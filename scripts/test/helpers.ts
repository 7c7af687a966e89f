import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "larder-scripts-test-"));
  made.push(dir);
  return dir;
}

/** A scratch repository root with the given synthesized stacks (cdk.tf.json only). */
export function scratchRoot(stacks: string[] = []): string {
  const root = tempDir();
  for (const stack of stacks) {
    mkdirSync(join(root, "cdktf.out", "stacks", stack), { recursive: true });
    writeFileSync(join(root, "cdktf.out", "stacks", stack, "cdk.tf.json"), "{}");
  }
  return root;
}

/** Runs a script file the way the justfile does, with a chosen PATH and LARDER_ROOT. */
export function script(name: string, args: string[], env: { PATH: string; LARDER_ROOT?: string }) {
  const result = spawnSync(process.execPath, [join(REPO, "scripts", "src", name), ...args], {
    env: { HOME: "/nonexistent", ...env },
    encoding: "utf8",
    input: "",
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
