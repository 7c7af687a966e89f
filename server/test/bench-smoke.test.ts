/**
 * The bench (`npm run bench`, server/bench/) at a tiny size, so it cannot rot: it must build its
 * data with Nix, start nginx and larderd, run every measurement and print the table and a JSON
 * line in which every key issue 8 names is a number. The figures themselves are not judged here:
 * a shared test machine says nothing about speed.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { findTool, TOOLS } from "../bench/tools.ts";
import { REQUIRED_KEYS } from "../bench/report.ts";
import { missing } from "./support/requirements.ts";

const run = promisify(execFile);
const RUN_TS = fileURLToPath(new URL("../bench/run.ts", import.meta.url));

const absent = TOOLS.filter((t) => findTool(t) === null);
const ready = absent.length === 0 || missing(`${absent.map((t) => t.name).join(", ")} not installed (apt-get install ${[...new Set(absent.map((t) => t.pkg))].join(" ")})`, "the bench compares larder with nginx using Nix-built data and wrk");

describe.skipIf(!ready)("npm run bench at a tiny size", () => {
  it("prints the table and a JSON line with every figure as a number", async () => {
    const args = [RUN_TS, "--quick", "--json", "--seconds", "1", "--rounds", "1", "--paths", "12", "--medium-mib", "4", "--big-mib", "16", "--large-objects", "3000"];
    const { stdout } = await run(process.execPath, args, { timeout: 170_000, maxBuffer: 16 * 1024 * 1024 });
    const lines = stdout.trimEnd().split("\n");
    const report = JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown> & {
      reasons: Record<string, string>;
      figures: Record<string, { larder: number | null; reference: number | null }>;
      config: { closurePaths: number };
    };
    for (const key of REQUIRED_KEYS) {
      expect(report.reasons[key], `${key} is null: ${report.reasons[key]}`).toBeUndefined();
      expect(typeof report[key], key).toBe("number");
      expect(report[key] as number, key).toBeGreaterThan(0);
      expect(stdout).toContain(key);
    }
    // A ratio is larder's figure over the reference's, both measured in this run.
    for (const key of REQUIRED_KEYS.filter((k) => k.includes("ratio"))) {
      const f = report.figures[key]!;
      expect(f.reference, key).toBeGreaterThan(0);
      expect(report[key]).toBeCloseTo((f.larder as number) / (f.reference as number), 9);
    }
    expect(report.config.closurePaths).toBe(12);
  }, 180_000);
});
