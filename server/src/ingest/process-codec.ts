/**
 * A decompressor that runs as a child process (`xz -dc`, `bzip2 -dc`). The in-process libraries
 * for these formats decode a whole input chunk before handing anything back (lzma-native, on a
 * thread) or run in JavaScript on the event loop (unbzip2-stream), so one small bomb could fill
 * memory or stall every request. A process decodes off the event loop, and the pipes give real
 * backpressure: when we stop reading its output, it blocks on a full pipe instead of buffering.
 * Destroying the stream (client gone, limit reached) kills the process.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { Duplex } from "node:stream";
import type { Readable, Writable } from "node:stream";

/** The process said the input is not valid in its format (exit status ≠ 0). */
export class DecodeError extends Error {}

const STDERR_KEPT = 512;

export class ProcessDecompressor extends Duplex {
  readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
  #stderr = "";
  #outputEnded = false;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** A write waiting for the process to take more input. */
  #waiting: (() => void) | undefined;

  constructor(command: string, args: readonly string[]) {
    super({ readableHighWaterMark: 1 << 16, writableHighWaterMark: 1 << 16 });
    this.#child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    const child = this.#child;
    child.on("error", (e: NodeJS.ErrnoException) => {
      // ENOENT: the tool is not installed; that is the server's fault, not the upload's.
      this.destroy(new Error(`cannot run ${command}: ${e.message}`));
    });
    // The process may exit (bad data) while we still write; its exit status says why.
    child.stdin.on("error", () => {});
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      if (this.#stderr.length < STDERR_KEPT) this.#stderr += s.slice(0, STDERR_KEPT - this.#stderr.length);
    });
    child.stdout.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout.pause();
    });
    child.stdout.on("end", () => {
      this.#outputEnded = true;
      this.#settle();
    });
    child.on("exit", (code, signal) => {
      this.#exit = { code, signal };
      this.#release();
      this.#settle();
    });
  }

  /** Ends the readable side once both the output is drained and the exit status is known. */
  #settle(): void {
    if (this.#exit === undefined || this.destroyed) return;
    if (this.#exit.code !== 0) {
      const why = this.#stderr.trim().replace(/^[^:]*: \(stdin\): /, "").split("\n")[0] || `exit status ${String(this.#exit.code ?? this.#exit.signal)}`;
      this.destroy(new DecodeError(why));
      return;
    }
    if (this.#outputEnded) this.push(null);
  }

  #release(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }

  override _read(): void {
    this.#child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.#exit !== undefined) {
      // Exited early: the status (in #settle) decides; more input changes nothing.
      cb();
      return;
    }
    if (this.#child.stdin.write(chunk)) {
      cb();
      return;
    }
    this.#waiting = () => cb();
    this.#child.stdin.once("drain", () => this.#release());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.#child.stdin.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.#exit === undefined) this.#child.kill("SIGKILL");
    this.#child.stdout.destroy();
    this.#child.stdin.destroy();
    this.#waiting = undefined;
    cb(err);
  }
}
