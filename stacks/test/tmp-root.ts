/**
 * Each test file's temporary files live under one directory of its own, removed when the file
 * is done: CDKTF's Testing.app() and synth make an output directory in the system's temporary
 * directory per call and never remove it (a full run left about 60), and the tools the tests run
 * (terraform, nix-instantiate) inherit TMPDIR. Vitest runs each file in its own worker process.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll } from "vitest";

const outer = tmpdir();
const root = mkdtempSync(path.join(outer, "larder-stacks-test-"));
process.env.TMPDIR = root;

afterAll(() => {
  process.env.TMPDIR = outer;
  rmSync(root, { recursive: true, force: true });
});
