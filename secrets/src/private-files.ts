/**
 * Where plaintext may exist: only in a fresh private directory (0700, on tmpfs when the machine
 * has /dev/shm), removed on every way out — normal return, error, and SIGINT/SIGTERM/SIGHUP.
 * Ciphertext is written next to its destination and renamed over it, so a file is either the
 * old version or the new one, never half of either.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

const doomed = new Set<string>();
let editor: ChildProcess | undefined;
let handlersInstalled = false;

function removeDoomed(): void {
  for (const path of doomed) rmSync(path, { recursive: true, force: true });
  doomed.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", removeDoomed);
  const codes: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
  for (const [signal, code] of Object.entries(codes)) {
    process.on(signal, () => {
      // Ctrl-C reaches the editor too (same process group); the editor decides whether it
      // ends the session, and its exit is handled where it was started.
      if (signal === "SIGINT" && editor !== undefined) return;
      editor?.kill("SIGTERM");
      removeDoomed();
      process.stderr.write(`larder-secrets: interrupted by ${signal}; plaintext removed, nothing written\n`);
      process.exit(code);
    });
  }
}

function tmpfsBase(): string {
  try {
    if (statSync("/dev/shm").isDirectory()) {
      const probe = mkdtempSync("/dev/shm/larder-secrets-");
      rmSync(probe, { recursive: true });
      return "/dev/shm";
    }
  } catch {
    // no usable tmpfs: fall back to the system temp dir
  }
  return tmpdir();
}

/** Runs `body` with a private directory that is gone when it returns, throws or is interrupted. */
export async function withPrivateDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  installHandlers();
  const dir = mkdtempSync(join(tmpfsBase(), "larder-secrets-"));
  doomed.add(dir);
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    doomed.delete(dir);
  }
}

/** Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename). */
export function writeAtomic(path: string, bytes: Uint8Array, mode = 0o644): void {
  installHandlers();
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  doomed.add(temp);
  try {
    const fd = openSync(temp, "wx", mode);
    try {
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
    doomed.delete(temp);
  }
}

/**
 * Runs $VISUAL/$EDITOR on `file` with the terminal attached. The variable is split on spaces
 * (`code --wait` works) and never passed through a shell.
 */
export function runEditor(editorCommand: string, file: string): Promise<void> {
  installHandlers();
  const [command, ...args] = editorCommand.trim().split(/\s+/);
  if (command === undefined || command === "") throw new Error("no editor: set $EDITOR (e.g. EDITOR=vim)");
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args, file], { stdio: "inherit" });
    editor = child;
    child.on("error", (error) => {
      editor = undefined;
      reject(new Error(`cannot start editor "${command}": ${error.message}; set $EDITOR to an installed editor`));
    });
    child.on("exit", (code, signal) => {
      editor = undefined;
      if (signal !== null) reject(new EditorAborted(`editor was stopped by ${signal}`, signal));
      else if (code !== 0) reject(new EditorAborted(`editor exited with status ${code}`, null));
      else resolve();
    });
  });
}

export class EditorAborted extends Error {
  readonly signal: NodeJS.Signals | null;
  constructor(message: string, signal: NodeJS.Signals | null) {
    super(message);
    this.signal = signal;
  }
}
