/** The bench's output: one table for people, one JSON object (last line) for machines. */
import { cpus, freemem, loadavg, totalmem, availableParallelism } from "node:os";
import type { Figure, Figures } from "./suite.ts";

interface Target {
  /** "ratio": larder/reference must reach `bound`; "max" / "min": larder's own value must stay below / reach it. */
  kind: "ratio" | "max" | "min";
  bound: number;
}

const TARGETS: Record<string, Target> = {
  narinfo_hit_ratio_c1: { kind: "ratio", bound: 0.8 },
  narinfo_hit_ratio_c16: { kind: "ratio", bound: 0.8 },
  narinfo_miss_ratio_c1: { kind: "ratio", bound: 0.8 },
  narinfo_miss_ratio_c16: { kind: "ratio", bound: 0.8 },
  narinfo_hit_ratio_c16_token: { kind: "ratio", bound: 0.8 },
  nar_ratio_c1: { kind: "ratio", bound: 0.8 },
  nar_ratio_c16: { kind: "ratio", bound: 0.8 },
  ingest_ratio_nix_copy: { kind: "ratio", bound: 0.5 },
  ingest_ratio_nix_copy_zstd3: { kind: "ratio", bound: 0.5 },
  ingest_ratio_nix_copy_closure: { kind: "ratio", bound: 0.5 },
  ingest_ratio_larder_push: { kind: "ratio", bound: 0.5 },
  ingest_ratio_larder_push_zstd3: { kind: "ratio", bound: 0.5 },
  ingest_ratio_larder_push_closure: { kind: "ratio", bound: 0.5 },
  peak_rss_mib_1g: { kind: "max", bound: 300 },
  missing_paths_10k_ms: { kind: "max", bound: 50 },
  ingest_ratio_nix_copy_closure_vs_file: { kind: "ratio", bound: 0.5 },
  ingest_ratio_larder_push_closure_vs_file: { kind: "ratio", bound: 0.5 },
  narinfo_distinct_ratio_c16: { kind: "ratio", bound: 0.4 },
  missing_paths_10k_large_ms: { kind: "max", bound: 50 },
  gc_delete_objects_per_s: { kind: "min", bound: 20_000 },
  gc_1m_seconds: { kind: "max", bound: 60 },
};

/** The keys issue 8 names; every one is in the JSON, as a number or as null with a reason. */
export const REQUIRED_KEYS = [
  "narinfo_hit_ratio_c1",
  "narinfo_hit_ratio_c16",
  "narinfo_miss_ratio_c16",
  "nar_ratio_c1",
  "nar_ratio_c16",
  "ingest_ratio_nix_copy",
  "ingest_ratio_larder_push",
  "peak_rss_mib_1g",
  "missing_paths_10k_ms",
  "ingest_ratio_nix_copy_closure_vs_file",
  "ingest_ratio_larder_push_closure_vs_file",
  "ingest_closure_server_us_per_path",
  "narinfo_distinct_ratio_c16",
  "missing_paths_10k_large_ms",
  "gc_delete_objects_per_s",
] as const;

export function headline(key: string, f: Figure | undefined): number | null {
  if (!f || f.larder === null) return null;
  // Measures of larder alone (limits, or no target at all) stand by themselves.
  if (TARGETS[key]?.kind === "max" || TARGETS[key]?.kind === "min" || (!TARGETS[key] && f.reference === null)) return f.larder;
  return f.reference === null || f.reference === 0 ? null : f.larder / f.reference;
}

export function machine(): Record<string, string | number> {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? "unknown",
    mem_total_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    mem_free_gib: Math.round((freemem() / 2 ** 30) * 10) / 10,
    loadavg_1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
  };
}

const num = (v: number | null, unit: string): string => {
  if (v === null) return "—";
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${unit}`;
};

export function table(figures: Figures): string {
  const rows: string[][] = [["measure", "larder", "reference", "larder/ref", "target", ""]];
  for (const [key, f] of Object.entries(figures)) {
    const t = TARGETS[key];
    const value = headline(key, f);
    const target = t ? (t.kind === "ratio" ? `≥ ${t.bound}×` : t.kind === "min" ? `≥ ${t.bound} ${f.unit}` : `< ${t.bound} ${f.unit}`) : "";
    const met = !t || value === null ? undefined : t.kind === "max" ? value < t.bound : value >= t.bound;
    const ok = met === undefined ? "" : met ? "ok" : "MISSED";
    rows.push([
      key,
      num(f.larder, f.unit),
      f.reference === null ? "" : num(f.reference, f.unit),
      t?.kind === "ratio" && value !== null ? `${value.toFixed(2)}×` : "",
      target,
      value === null ? `n/a: ${f.reason ?? "not measured"}` : ok,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const out = [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  ").slice(0, 120), ...rows.slice(1).map(line)];
  const details = Object.entries(figures)
    .filter(([, f]) => f.detail)
    .map(([k, f]) => `  ${k}: ${f.detail}`);
  return [...out, "", ...details].join("\n");
}

export function jsonReport(figures: Figures, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const reasons: Record<string, string> = {};
  for (const key of new Set([...REQUIRED_KEYS, ...Object.keys(figures)])) {
    const f = figures[key];
    out[key] = headline(key, f);
    if (out[key] === null) reasons[key] = f?.reason ?? "not measured";
  }
  return { ...out, reasons, figures, ...extra };
}
