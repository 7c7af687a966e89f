/**
 * Runs one command from an argument vector (never a shell string) with a deadline, keeping only
 * the tail of its combined output so memory stays bounded whatever it prints. The child gets its
 * own process group, so a deadline stops what it started too.
 */
import { spawn } from "node:child_process";

/** Output kept per command; the server keeps a tail of this again. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

export interface RunResult {
  ok: boolean;
  /** Exit status, or null when it was killed or could not start. */
  code: number | null;
  /** The tail of stdout and stderr, interleaved as they came. */
  output: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the whole group after this long; none when absent. */
  timeoutMs?: number;
}

/** Keeps the last `limit` bytes written to it. */
export class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;
  private readonly limit: number;
  constructor(limit = OUTPUT_TAIL_BYTES) {
    this.limit = limit;
  }

  push(chunk: Buffer | string): void {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      this.size -= (this.chunks.shift() as Buffer).length;
      this.dropped = true;
    }
  }

  text(): string {
    let all = Buffer.concat(this.chunks);
    if (all.length > this.limit) {
      all = all.subarray(all.length - this.limit);
      this.dropped = true;
    }
    return `${this.dropped ? "[…]\n" : ""}${all.toString("utf8")}`;
  }
}

export function runCommand(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  const tail = new Tail();
  tail.push(`$ ${argv.join(" ")}\n`);
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(cmd as string, args, { env: opts.env ?? (process.env as Record<string, string>), cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    } catch (e) {
      tail.push(`cannot run ${cmd}: ${(e as Error).message}\n`);
      resolve({ ok: false, code: null, output: tail.text() });
      return;
    }
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            tail.push(`\n[killed after ${Math.round((opts.timeoutMs as number) / 1000)}s]\n`);
            killGroup(child.pid, "SIGKILL");
          }, opts.timeoutMs);
    child.stdout.on("data", (d: Buffer) => tail.push(d));
    child.stderr.on("data", (d: Buffer) => tail.push(d));
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      tail.push(`cannot run ${cmd}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : e.message}\n`);
      resolve({ ok: false, code: null, output: tail.text() });
    });
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      resolve({ ok: code === 0 && !timedOut, code, output: tail.text() });
    });
  });
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
