/**
 * Human-readable durations, as attic's config and `atticadm make-token --validity` accept them
 * ("12 hours", "3 months", "2y", "1h 30m", "0s"). Months and years use the same lengths as the
 * Rust `humantime` crate (30.44 and 365.25 days) so an attic config means the same here.
 */
// A Map: unit names come from user input, and an object would also answer "constructor".
const UNIT_SECONDS = new Map<string, number>(Object.entries({
  s: 1, sec: 1, secs: 1, second: 1, seconds: 1,
  m: 60, min: 60, mins: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hrs: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
  M: 2_630_016, month: 2_630_016, months: 2_630_016,
  y: 31_557_600, year: 31_557_600, years: 31_557_600,
}));

export class DurationError extends Error {}

/** Parses a duration into whole seconds; throws DurationError with the offending text. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "") throw new DurationError("empty duration");
  if (/^\d+$/.test(s)) throw new DurationError(`duration "${text}" needs a unit, e.g. "${s}s" or "${s} days"`);
  let total = 0;
  let rest = s;
  const part = /^(\d+)\s*([A-Za-z]+)\s*/;
  while (rest.length > 0) {
    const m = part.exec(rest);
    if (!m) throw new DurationError(`cannot parse duration "${text}" (expected e.g. "12 hours", "3 months", "2y")`);
    const n = Number(m[1]);
    const unitName = m[2] as string;
    const unit = UNIT_SECONDS.get(unitName) ?? UNIT_SECONDS.get(unitName.toLowerCase());
    if (unit === undefined) throw new DurationError(`unknown unit "${unitName}" in duration "${text}"`);
    total += n * unit;
    rest = rest.slice(m[0].length);
  }
  if (!Number.isSafeInteger(total)) throw new DurationError(`duration "${text}" is too long`);
  return total;
}

/** Formats seconds compactly for logs and CLI output ("90s" → "1m 30s"). */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return "0s";
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join(" ");
}

// The units parseDuration reads, largest first, so what a user typed comes back in their words.
const HUMAN_UNITS: readonly [string, number][] = [
  ["year", 31_557_600],
  ["month", 2_630_016],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

/** Seconds in words, singular where it is one: 1 → "1 second", 7890048 → "3 months", 90 → "1 minute 30 seconds". */
export function humanDuration(seconds: number): string {
  if (seconds === 0) return "0 seconds";
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of HUMAN_UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n} ${unit}${n === 1 ? "" : "s"}`);
    rest -= n * size;
  }
  return parts.join(" ");
}
