/** Byte sizes as operators write them: 500000000, "500 GB", "1.5 TiB" (SI and binary units). */
const UNIT_BYTES = new Map<string, number>([
  ["b", 1],
  ["kb", 1e3], ["mb", 1e6], ["gb", 1e9], ["tb", 1e12], ["pb", 1e15],
  ["kib", 2 ** 10], ["mib", 2 ** 20], ["gib", 2 ** 30], ["tib", 2 ** 40], ["pib", 2 ** 50],
]);

export class SizeError extends Error {}

/** Parses a size into whole bytes; throws SizeError naming the text. */
export function parseSize(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw new SizeError(`size ${value} must be a whole number of bytes`);
    return value;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$/.exec(value);
  const unit = UNIT_BYTES.get((m?.[2] ?? "b").toLowerCase());
  if (!m || unit === undefined) throw new SizeError(`cannot parse size "${value}" (expected e.g. "500 GB", "2 TiB" or a number of bytes)`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new SizeError(`size "${value}" is too large`);
  return bytes;
}
