/**
 * The GC summary larderd-admin prints as its last stdout line after `--mode
 * garbage-collector-once`:
 *
 *     {"objects":12,"nars":9,"storage_objects":9,"bytes_freed":73400320,"staged_expired":0,"duration_ms":5120}
 *
 * Keys this script does not know are ignored, so a newer server does not break an older script.
 */
import { fail } from "./errors.ts";

export interface GcSummary {
  objects: number;
  nars: number;
  storage_objects: number;
  bytes_freed: number;
  duration_ms: number;
  /** Uploads whose narinfo never came, expired after the grace period. */
  staged_expired?: number;
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
  if (typeof record !== "object" || record === null) fail(`unexpected GC summary ${line.slice(0, 120)}`);
  const bad = KEYS.filter((k) => typeof record[k] !== "number" || !Number.isFinite(record[k]) || (record[k] as number) < 0);
  if (bad.length > 0) fail(`unexpected GC summary ${line.slice(0, 120)} (${bad.map((k) => `bad ${k}`).join(", ")})`);
  const summary: GcSummary = {
    objects: record.objects as number,
    nars: record.nars as number,
    storage_objects: record.storage_objects as number,
    bytes_freed: record.bytes_freed as number,
    duration_ms: record.duration_ms as number,
  };
  if (typeof record.staged_expired === "number") summary.staged_expired = record.staged_expired;
  return summary;
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

