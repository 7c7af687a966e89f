/**
 * Push progress: on a terminal, a bar per active upload and an overall bar with bytes/s,
 * redrawn in place on stderr, and above them a line that stays for every path done (attic's
 * `✅ /nix/store/… (52.89 MiB/s)`); anywhere else (CI logs), one plain line per path with its
 * size and speed, and no control characters.
 */
import type { Writable } from "node:stream";

export interface Progress {
  begin(paths: number, bytes: number): void;
  start(path: string, size: number): void;
  bytes(path: string, n: number): void;
  restart(path: string, attempt: number, reason: string): void;
  finish(path: string, how: "uploaded" | "deduplicated"): void;
  /** A path not pushed because `why` (e.g. signed by an upstream key). */
  skip(path: string, why: string): void;
  fail(path: string, message: string): void;
  end(): void;
}

/** `n` bytes in the largest binary unit it reaches. */
function scaled(n: number): { value: number; unit: string } {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return { value, unit: units[i] as string };
}

export function formatBytes(n: number): string {
  const { value, unit } = scaled(n);
  return unit === "B" ? `${Math.round(n)} B` : `${value.toFixed(1)} ${unit}`;
}

/** A transfer rate as attic prints it: two decimals, e.g. "52.89 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  const { value, unit } = scaled(bytesPerSecond);
  return `${value.toFixed(2)} ${unit}/s`;
}

/** Upload time of one path, from start() to finish(). */
class Clock {
  readonly #started = new Map<string, { at: number; size: number }>();
  start(path: string, size: number): void {
    this.#started.set(path, { at: performance.now(), size });
  }
  /** The path's size and rate; forgets it. */
  stop(path: string): { size: number; rate: string } {
    const s = this.#started.get(path);
    this.#started.delete(path);
    if (!s) return { size: 0, rate: formatRate(0) };
    return { size: s.size, rate: formatRate(s.size / Math.max(0.001, (performance.now() - s.at) / 1000)) };
  }
  restart(path: string): void {
    const s = this.#started.get(path);
    if (s) s.at = performance.now();
  }
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
  readonly #clock = new Clock();
  constructor(out: Writable) {
    this.#out = out;
  }
  begin(): void {}
  start(path: string, size: number): void {
    this.#clock.start(path, size);
  }
  bytes(): void {}
  restart(path: string, attempt: number, reason: string): void {
    this.#clock.restart(path);
    this.#out.write(`retrying ${path} (attempt ${attempt}): ${reason}\n`);
  }
  finish(path: string, how: "uploaded" | "deduplicated"): void {
    const { size, rate } = this.#clock.stop(path);
    this.#out.write(`pushed ${path} (${formatBytes(size)}, ${how}, ${rate})\n`);
  }
  skip(path: string, why: string): void {
    this.#out.write(`skipped ${path} (${why})\n`);
  }
  fail(path: string, message: string): void {
    this.#clock.stop(path);
    this.#out.write(`failed ${path}: ${message}\n`);
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
  readonly #clock = new Clock();

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
    this.#clock.start(path, size);
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
    this.#clock.restart(path);
    this.#above(`retrying ${path} (attempt ${attempt}): ${reason}`);
  }
  finish(path: string, how: "uploaded" | "deduplicated"): void {
    this.#active.delete(path);
    this.#donePaths++;
    const { rate } = this.#clock.stop(path);
    this.#above(`✅ ${path} (${how === "deduplicated" ? "deduplicated" : rate})`);
  }
  skip(path: string): void {
    this.#above(`✅ ${path} (skipped (upstream))`);
  }
  fail(path: string, message: string): void {
    const a = this.#active.get(path);
    if (a) this.#sentBytes -= a.sent;
    this.#active.delete(path);
    this.#donePaths++;
    this.#clock.stop(path);
    this.#above(`❌ ${path}: ${message}`);
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
