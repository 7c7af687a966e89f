/** Runs the `larder` client as a user would: its own process, a given HOME and environment. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

export const LARDER_BIN = fileURLToPath(new URL("../../bin/larder.js", import.meta.url));
export const LARDERD_MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

export interface RunResult {
  code: number;
  /** The signal that ended the process, if one did. */
  signal?: string;
  stdout: string;
  stderr: string;
}

export function runNode(script: string, args: string[], env: Record<string, string>, input?: string, timeoutMs = 240_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [script, ...args], { env, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      const signal = (err as { signal?: unknown } | null)?.signal;
      resolve({ code, stdout, stderr, ...(typeof signal === "string" && { signal }) });
    });
    child.stdin?.end(input ?? "");
  });
}

export function larderCli(env: Record<string, string>) {
  return (args: string[], input?: string) => runNode(LARDER_BIN, args, env, input);
}

/** A user-facing failure: non-zero exit and exactly one line on stderr, with no stack trace. */
export function oneLineError(r: RunResult): string {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  if (r.code === 0) throw new Error(`expected a failure, got exit 0: ${r.stdout}`);
  if (lines.length !== 1 || /^\s+at /m.test(r.stderr)) throw new Error(`expected one line on stderr, got:\n${r.stderr}`);
  return lines[0] as string;
}
