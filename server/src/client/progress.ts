/**
 * Push progress: on a terminal, a bar per active upload and an overall bar with bytes/s,
 * redrawn in place on stderr; anywhere else (CI logs), one plain line per path and no control
 * characters.
 */
import type { Writable } from "node:stream";

export interface Progress {
  begin(paths: number, bytes: number): void;
  start(path: string, size: number): void;
  bytes(path: string, n: number): void;
  restart(path: string, attempt: number, reason: string): void;
  finish(path: string, how: string): void;
  fail(path: string, message: string): void;
  end(): void;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${v.toFixed(1)} ${units[i]}`;
}

function bar(frac: number, width: number): string {
  const f = Math.max(0, Math.min(1, frac));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}]`;
}

function shortName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.length > 33 ? base.slice(33) : base;
}

export class LineProgress implements Progress {
  readonly #out: Writable;
  #sizes = new Map<string, number>();
  constructor(out: Writable) {
    this.#out = out;
  }
  begin(): void {}
  start(path: string, size: number): void {
    this.#sizes.set(path, size);
  }
  bytes(): void {}
  restart(path: string, attempt: number, reason: string): void {
    this.#out.write(`retrying ${path} (attempt ${attempt}): ${reason}\n`);
  }
  finish(path: string, how: string): void {
    this.#out.write(`pushed ${path} (${formatBytes(this.#sizes.get(path) ?? 0)}, ${how})\n`);
    this.#sizes.delete(path);
  }
  fail(path: string, message: string): void {
    this.#out.write(`failed ${path}: ${message}\n`);
    this.#sizes.delete(path);
  }
  end(): void {}
}

interface Active {
  size: number;
  sent: number;
}

export class BarProgress implements Progress {
  readonly #out: NodeJS.WriteStream;
  readonly #active = new Map<string, Active>();
  #totalPaths = 0;
  #totalBytes = 0;
  #donePaths = 0;
  #sentBytes = 0;
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #started = Date.now();

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }
  begin(paths: number, bytes: number): void {
    this.#totalPaths = paths;
    this.#totalBytes = bytes;
    // Draw at once: a push shorter than one tick would otherwise show no progress at all.
    this.#draw();
    this.#timer = setInterval(() => this.#draw(), 100);
    this.#timer.unref();
  }
  start(path: string, size: number): void {
    this.#active.set(path, { size, sent: 0 });
  }
  bytes(path: string, n: number): void {
    const a = this.#active.get(path);
    if (a) a.sent += n;
    this.#sentBytes += n;
  }
  restart(path: string, attempt: number, reason: string): void {
    const a = this.#active.get(path);
    if (a) {
      this.#sentBytes -= a.sent;
      a.sent = 0;
    }
    this.#above(`retrying ${path} (attempt ${attempt}): ${reason}`);
  }
  finish(path: string): void {
    this.#active.delete(path);
    this.#donePaths++;
  }
  fail(path: string, message: string): void {
    const a = this.#active.get(path);
    if (a) this.#sentBytes -= a.sent;
    this.#active.delete(path);
    this.#donePaths++;
    this.#above(`failed ${path}: ${message}`);
  }
  end(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#clear();
  }
  #clear(): void {
    if (this.#drawn > 0) this.#out.write(`\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }
  #above(line: string): void {
    this.#clear();
    this.#out.write(`${line}\n`);
    this.#draw();
  }
  #draw(): void {
    // A terminal that reports no size (0 columns) gets the classic 80.
    const cols = Math.max(40, this.#out.columns || 80);
    const lines: string[] = [];
    for (const [path, a] of this.#active) {
      const name = shortName(path).slice(0, Math.max(10, cols - 45)).padEnd(Math.min(30, cols - 45));
      lines.push(`${name} ${bar(a.size ? a.sent / a.size : 0, 20)} ${formatBytes(a.sent)}/${formatBytes(a.size)}`.slice(0, cols - 1));
    }
    const secs = Math.max(0.001, (Date.now() - this.#started) / 1000);
    lines.push(
      `${bar(this.#totalBytes ? this.#sentBytes / this.#totalBytes : 0, 30)} ${this.#donePaths}/${this.#totalPaths} paths, ${formatBytes(this.#sentBytes)}/${formatBytes(this.#totalBytes)}, ${formatBytes(this.#sentBytes / secs)}/s`.slice(0, cols - 1),
    );
    this.#clear();
    this.#out.write(`${lines.join("\n")}\n`);
    this.#drawn = lines.length;
  }
}
