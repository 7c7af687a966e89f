/**
 * The GC summary larderd-admin prints as its last stdout line after `--mode
 * garbage-collector-once`:
 *
 *     {"objects":12,"nars":9,"storage_objects":9,"bytes_freed":73400320,"duration_ms":5120}
 */
import { fail } from "./errors.ts";

export interface GcSummary {
  objects: number;
  nars: number;
  storage_objects: number;
  bytes_freed: number;
  duration_ms: number;
}

const KEYS = ["objects", "nars", "storage_objects", "bytes_freed", "duration_ms"] as const;

export function parseGcSummary(line: string): GcSummary {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    fail(`larderd-admin did not end with a JSON summary (last line: ${line.slice(0, 80)}); is the host running this larder version?`);
  }
  const record = json as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !(KEYS as readonly string[]).includes(k));
  const bad = KEYS.filter((k) => typeof record[k] !== "number" || !Number.isFinite(record[k]) || (record[k] as number) < 0);
  if (unknown.length > 0 || bad.length > 0) {
    fail(`unexpected GC summary ${line.slice(0, 120)} (${[...unknown.map((k) => `unknown ${k}`), ...bad.map((k) => `bad ${k}`)].join(", ")})`);
  }
  return record as unknown as GcSummary;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatGcSummary(s: GcSummary): string {
  return [
    `objects removed:         ${s.objects}`,
    `NARs removed:            ${s.nars}`,
    `storage objects deleted: ${s.storage_objects}`,
    `space freed:             ${formatBytes(s.bytes_freed)}`,
    `took:                    ${(s.duration_ms / 1000).toFixed(1)} s`,
  ].join("\n");
}

export const GC_COMMAND = ["larderd-admin", "--mode", "garbage-collector-once"] as const;

