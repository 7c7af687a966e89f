import type { Context } from "../context.ts";
import { loadConfig, readersOf } from "../recipients.ts";

/** Who can read what: each secret with its groups and the people and hosts behind them. */
export function list(ctx: Context, json: boolean): void {
  const config = loadConfig(ctx.dir);
  const rows = Object.keys(config.secrets).sort().map((name) => ({
    file: name,
    readers: config.secrets[name] ?? [],
    owners: [...new Set(readersOf(config, name).map((r) => r.owner))],
  }));
  if (json) {
    ctx.out(JSON.stringify(rows, null, 2));
    return;
  }
  const width = Math.max(4, ...rows.map((r) => r.file.length));
  for (const row of rows) {
    const groups = row.readers.map((g) => (config.groups[g] ? `${g} (${config.groups[g].join(", ")})` : g));
    ctx.out(`${row.file.padEnd(width)}  ${groups.join(", ")}`);
  }
  if (rows.length === 0) ctx.out("no secrets configured yet; list them under \"secrets\" in recipients.json");
}
