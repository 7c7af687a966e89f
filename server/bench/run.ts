/**
 * `npm run bench` — larder against the physical limit (docs/PERFORMANCE.md): reads against nginx
 * serving the same cache as flat files, ingest against `zstd | sha256sum` on the same bytes,
 * memory while ingesting a big NAR. Progress goes to stderr; the table (and with --json, one
 * JSON object on the last line) to stdout.
 */
import { parseArgs } from "node:util";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureTools } from "./tools.ts";
import { runSuite, type SuiteOptions } from "./suite.ts";
import { jsonReport, machine, table } from "./report.ts";
import type { Sizes } from "./data.ts";

const USAGE = `usage: npm run bench -- [options]
  --quick              small sizes (30 paths, 16 MiB and 64 MiB NARs, 2 s load runs)
  --json               print the figures as one JSON object on the last line
  --postgres           PostgreSQL instead of SQLite (a throwaway cluster, or LARDER_TEST_POSTGRES_URL)
  --s3                 S3 (a local s3rver) instead of local disk
  --install            install missing tools (nginx, wrk, zstd, nix-bin) with apt-get (root)
  --cpu-prof DIR       write a V8 CPU profile of the larderd that serves the reads into DIR
  --seconds N          length of each load run (default 5, quick 2)
  --rounds N           runs per comparison, best kept (default 2, quick 1)
  --paths N --medium-mib N --big-mib N   override the data sizes
  --large-objects N    paths in the synthesized large cache (narinfo reads where nothing repeats,
                       get-missing-paths and GC on it; default 300000, quick 20000; 0 skips)
  --gc-1m              also GC a synthesized cache of 1M objects (closures of 100, 10% expired)
  --keep               keep the work directory`;

function positiveInt(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer (got "${v}")`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      postgres: { type: "boolean", default: false },
      s3: { type: "boolean", default: false },
      install: { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      seconds: { type: "string" },
      rounds: { type: "string" },
      paths: { type: "string" },
      "medium-mib": { type: "string" },
      "big-mib": { type: "string" },
      "large-objects": { type: "string" },
      "gc-1m": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const q = values.quick;
  const sizes: Sizes = {
    closurePaths: positiveInt("paths", values.paths, q ? 30 : 300),
    mediumMiB: positiveInt("medium-mib", values["medium-mib"], q ? 16 : 200),
    bigMiB: positiveInt("big-mib", values["big-mib"], q ? 64 : 1024),
  };
  if (sizes.closurePaths < 2) throw new Error("--paths must be at least 2 (a root and one path)");
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const tools = await ensureTools(values.install, log);
  const work = await mkdtemp(join(tmpdir(), "larder-bench-"));
  const opts: SuiteOptions = {
    work,
    sizes,
    seconds: positiveInt("seconds", values.seconds, q ? 2 : 5),
    rounds: positiveInt("rounds", values.rounds, q ? 1 : 2),
    postgres: values.postgres,
    s3: values.s3,
    largeObjects: values["large-objects"] === "0" ? 0 : positiveInt("large-objects", values["large-objects"], q ? 20_000 : 300_000),
    gc1m: values["gc-1m"],
    ...(values["cpu-prof"] !== undefined && { cpuProfDir: resolve(values["cpu-prof"]) }),
    log,
  };
  const backend = `${values.postgres ? "postgres" : "sqlite"}+${values.s3 ? "s3rver" : "local"}`;
  const started = Date.now();
  const host = machine();
  try {
    log(`work directory ${work}; backend ${backend}`);
    const result = await runSuite(opts, tools);
    const seconds = Math.round((Date.now() - started) / 1000);
    process.stdout.write(
      `larder bench — ${backend}, ${result.data.closurePaths} paths (${result.data.closureMiB.toFixed(0)} MiB NAR), ${result.data.mediumMiB.toFixed(0)} MiB and ${result.data.bigMiB.toFixed(0)} MiB NARs, ` +
        `${opts.seconds} s × ${opts.rounds} per load run, ${seconds} s in all\n` +
        `machine: ${host.nproc} cores, ${host.cpu}, ${host.mem_total_gib} GiB, load ${host.loadavg_1m} at start\n\n${table(result.figures)}\n`,
    );
    if (values.json) {
      const report = jsonReport(result.figures, { config: { backend, ...sizes, seconds: opts.seconds, rounds: opts.rounds, quick: q }, data: result.data, machine: host, seconds });
      process.stdout.write(`${JSON.stringify(report)}\n`);
    }
  } finally {
    if (values.keep) log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true, maxRetries: 3 });
  }
}

// Awaited at the top level, so a step that never settles ends the run with an error, not silence.
try {
  await main();
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
