// `npm run synth` as users run it: a real process, a real output directory.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";
import { validInput } from "./helpers.ts";

const run = promisify(execFile);
const SYNTH = path.join(import.meta.dirname, "..", "src", "synth.ts");

async function synth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SYNTH, ...args], { env: { ...process.env, CDKTF_OUTDIR: "" } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** A fresh directory, removed when the test ends. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe("synth.ts", () => {
  it("synthesizes every committed deployment and its state bootstrap, quickly", async () => {
    const out = tempDir("larder-synth-");
    const started = performance.now();
    const result = await synth(["--out", out]);
    const elapsed = performance.now() - started;
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^synthesized larder-example-scale, larder-example, larder-state-/);
    for (const stack of ["larder-example", "larder-example-scale", "larder-state-123456789012-eu-central-1", "larder-state-123456789012-us-east-1"]) {
      expect(existsSync(path.join(out, "stacks", stack, "cdk.tf.json")), stack).toBe(true);
    }
    const manifest = JSON.parse(readFileSync(path.join(out, "manifest.json"), "utf8")) as { stacks: Record<string, unknown> };
    expect(Object.keys(manifest.stacks)).toHaveLength(4);
    // Submodule imports keep the whole run (Node start included) to a few seconds at most.
    expect(elapsed).toBeLessThan(20_000);
  }, 30_000);

  it("synthesizes only the deployments named", async () => {
    const out = tempDir("larder-synth-");
    const result = await synth(["--out", out, "example"]);
    expect(result.code).toBe(0);
    expect(existsSync(path.join(out, "stacks", "larder-example"))).toBe(true);
    expect(existsSync(path.join(out, "stacks", "larder-example-scale"))).toBe(false);
    const unknown = await synth(["--out", out, "nope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no deployment named nope; known: example-scale, example|no deployment named nope; known: example, example-scale/);
  }, 30_000);

  it("fails on an invalid config with one line naming the file and the field", async () => {
    const directory = tempDir("larder-deployments-");
    const input = validInput();
    input.vpcCidr = "10.0.0.0/33";
    writeFileSync(path.join(directory, "broken.json"), JSON.stringify(input));
    const result = await synth(["--out", path.join(directory, "out"), "--deployments", directory]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/^invalid config: .*broken\.json: deployment "test": vpcCidr: "10\.0\.0\.0\/33" has a prefix longer than \/32/);
    expect(existsSync(path.join(directory, "out"))).toBe(false);
  }, 30_000);

  it("loads TypeScript deployment files and refuses duplicate names", async () => {
    const directory = tempDir("larder-deployments-");
    writeFileSync(path.join(directory, "a.ts"), `export default ${JSON.stringify(validInput())};\n`);
    writeFileSync(path.join(directory, "b.json"), JSON.stringify(validInput()));
    const result = await synth(["--out", path.join(directory, "out"), "--deployments", directory]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/two deployments are named "test"/);
  }, 30_000);
});
