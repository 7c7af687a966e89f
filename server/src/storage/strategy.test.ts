import { describe, expect, it } from "vitest";
import { rankBackends, type BackendState } from "./strategy.ts";
import type { StorageStrategy } from "./types.ts";

/** Places `sizes` one after the other as the pool does (choice = first ranked), returning bytes and counts per backend. */
function place(strategy: StorageStrategy, backends: BackendState[], sizes: number[]) {
  const state = backends.map((b) => ({ ...b }));
  const counts = new Map(state.map((b) => [b.name, 0]));
  let refused = 0;
  sizes.forEach((size, turn) => {
    const [choice] = rankBackends(strategy, state, size, turn);
    if (!choice) {
      refused++;
      return;
    }
    const b = state.find((s) => s.name === choice.name) as BackendState;
    b.used += size;
    counts.set(b.name, (counts.get(b.name) ?? 0) + 1);
  });
  return { bytes: new Map(state.map((b) => [b.name, b.used])), counts, refused };
}

// Sizes like a closure's NARs: many small, a few large (a deterministic spread, not a constant).
const sizes = Array.from({ length: 3000 }, (_, i) => 1000 + ((i * 7919) % 97) * 1000 + (i % 50 === 0 ? 5_000_000 : 0));
const total = sizes.reduce((a, b) => a + b, 0);
const two = (extra: Partial<BackendState>[] = [{}, {}]): BackendState[] =>
  extra.map((e, i) => ({ name: `b${i}`, used: 0, weight: 1, ...e }));

describe("placement strategies", () => {
  it("round-robin alternates: equal object counts", () => {
    const r = place("round-robin", two([{}, {}, {}]), sizes);
    expect([...r.counts.values()]).toEqual([1000, 1000, 1000]);
  });

  it("round-robin gives a full backend's turn to the next one", () => {
    const r = place("round-robin", two([{ capacity: 10_000_000 }, {}]), sizes);
    expect(r.bytes.get("b0")).toBeLessThanOrEqual(10_000_000);
    expect(r.refused).toBe(0);
    expect((r.bytes.get("b0") ?? 0) + (r.bytes.get("b1") ?? 0)).toBe(total);
  });

  it("in-order fills the first backend to its capacity, then the next", () => {
    const r = place("in-order", two([{ capacity: 20_000_000 }, { capacity: 30_000_000 }, {}]), sizes);
    // Filled to within one NAR of capacity, never over it.
    expect(r.bytes.get("b0")).toBeLessThanOrEqual(20_000_000);
    expect(r.bytes.get("b0")).toBeGreaterThan(20_000_000 - 5_100_000);
    expect(r.bytes.get("b1")).toBeLessThanOrEqual(30_000_000);
    expect(r.bytes.get("b1")).toBeGreaterThan(30_000_000 - 5_100_000);
    expect(r.bytes.get("b2")).toBe(total - (r.bytes.get("b0") ?? 0) - (r.bytes.get("b1") ?? 0));
  });

  it("split stores bytes in proportion to the weights (within 1%)", () => {
    const r = place("split", two([{ weight: 70 }, { weight: 30 }]), sizes);
    expect((r.bytes.get("b0") ?? 0) / total).toBeCloseTo(0.7, 2);
    expect(Math.abs((r.bytes.get("b0") ?? 0) / total - 0.7)).toBeLessThan(0.01);
  });

  it("split starts from what each backend already holds", () => {
    const r = place("split", two([{ weight: 1, used: 50_000_000 }, { weight: 1 }]), sizes);
    const a = r.bytes.get("b0") ?? 0;
    const b = r.bytes.get("b1") ?? 0;
    expect(Math.abs(a - b) / (a + b)).toBeLessThan(0.01);
  });

  it("least-used keeps bytes even, catching up with a backend that started fuller", () => {
    const r = place("least-used", two([{ used: 40_000_000 }, {}, {}]), sizes);
    const all = [...r.bytes.values()];
    expect(Math.max(...all) - Math.min(...all)).toBeLessThanOrEqual(5_100_000);
  });

  it("refuses when no backend has room (the caller answers 507)", () => {
    const r = place("least-used", two([{ capacity: 1000 }, { capacity: 2000 }]), [1500, 1500, 500, 600]);
    expect(r.refused).toBe(2);
    expect([...r.bytes.values()]).toEqual([500, 1500]);
  });

  it("ranks the other backends behind the choice, as fallbacks for a failed write", () => {
    expect(rankBackends("in-order", two([{}, {}, {}]), 1, 0).map((b) => b.name)).toEqual(["b0", "b1", "b2"]);
    expect(rankBackends("round-robin", two([{}, {}, {}]), 1, 4).map((b) => b.name)).toEqual(["b1", "b2", "b0"]);
  });
});
