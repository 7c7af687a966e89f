/**
 * Which backend takes a new object: a pure function of the backends' state, so each strategy's
 * distribution is tested without I/O. The first entry is the choice; the rest are fallbacks, in
 * the order they are tried when the choice fails.
 */
import type { StorageStrategy } from "./types.ts";

export interface BackendState {
  name: string;
  /** Bytes stored (from the database) plus bytes being written now. */
  used: number;
  capacity?: number;
  weight: number;
}

/** Backends that can take `size` more bytes, best first. `turn` counts this placement's earlier choices. */
export function rankBackends(strategy: StorageStrategy, backends: readonly BackendState[], size: number, turn: number): BackendState[] {
  const fits = backends.filter((b) => b.capacity === undefined || b.used + size <= b.capacity);
  if (fits.length === 0) return [];
  switch (strategy) {
    case "in-order":
      return fits;
    case "round-robin": {
      // Rotate over all configured backends, so a full one's turn goes to the next rather than
      // doubling one backend's share.
      const start = turn % backends.length;
      const rotated = [...backends.slice(start), ...backends.slice(0, start)];
      return rotated.filter((b) => fits.includes(b));
    }
    case "least-used":
      return stable(fits, (a, b) => a.used - b.used);
    case "split": {
      // Largest shortfall against its weighted share of all bytes (after this write) first: over
      // time each backend holds bytes in proportion to its weight.
      const total = backends.reduce((n, b) => n + b.used, 0) + size;
      const weights = backends.reduce((n, b) => n + b.weight, 0);
      const shortfall = (b: BackendState) => (total * b.weight) / weights - b.used;
      return stable(fits, (a, b) => shortfall(b) - shortfall(a));
    }
    default: {
      const unknown: never = strategy;
      throw new Error(`unknown storage strategy ${String(unknown)}`);
    }
  }
}

function stable<T>(items: T[], cmp: (a: T, b: T) => number): T[] {
  return items
    .map((item, i) => ({ item, i }))
    .sort((a, b) => cmp(a.item, b.item) || a.i - b.i)
    .map((x) => x.item);
}
