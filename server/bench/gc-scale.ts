/**
 * `node bench/gc-scale.ts [--objects N] [--closure N] [--expired F] [--postgres] [--missing] [--batch N]`
 * — garbage collection and get-missing-paths on a large synthesized cache (bench/synth.ts):
 * objects deleted per second, the NAR step's time, and that no closure was broken (references
 * left dangling: must be 0). Runs GC in process against SQLite (or PostgreSQL: a throwaway
 * cluster, or LARDER_TEST_POSTGRES_URL) and local storage; the NARs have no bytes, so the storage
 * step only measures the journal. Prints one JSON object.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { openDb, type Db } from "../src/db/connect.ts";
import { presentObjects } from "../src/db/objects.ts";
import { createSynthCache, danglingReferences, missingPathsQuestion, synthesizeCache } from "./synth.ts";
import { timedGc } from "./large.ts";
import { startPostgres, type PostgresHandle } from "../test/support/postgres-cluster.ts";

const DAY = 86_400;

export interface GcScaleResult {
  backend: string;
  objects: number;
  expired: number;
  deleted: number;
  dangling_refs: number;
  synth_s: number;
  objects_step_s: number;
  /** The whole run: objects, build logs, NARs, storage journal. */
  total_s: number;
  gc_delete_objects_per_s: number;
  /** This process's CPU time (user + system) during the run, and the bytes it wrote to disk (/proc/self/io): measures a loaded machine leaves alone. */
  gc_cpu_s: number;
  gc_write_mb: number;
  /**
   * Event-loop delay during the run (p99 and max, ms): on SQLite every statement runs on the one
   * thread requests use, so this is how long an upload arriving during GC waits for a batch.
   */
  gc_loop_delay_p99_ms: number;
  gc_loop_delay_max_ms: number;
  missing_paths_10k_ms?: number;
}

function writtenBytes(): number {
  const m = /^write_bytes: (\d+)$/m.exec(readFileSync("/proc/self/io", "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

/** get-missing-paths' database work on the request path (one lookup; access marks are written later by the tracker) for 10,000 hashes, half present; median of 5. */
export async function missingPaths10k(db: Db, cacheId: number, present: readonly string[]): Promise<number> {
  const times: number[] = [];
  for (let round = 0; round < 5; round++) {
    const asked = missingPathsQuestion(present, round);
    const t = performance.now();
    await presentObjects(db, cacheId, [...new Set(asked)]);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[2]! * 10) / 10;
}

export async function gcScale(o: { objects: number; closure: number; expired: number; postgres: boolean; missing: boolean; batch?: number; log: (s: string) => void }): Promise<GcScaleResult> {
  const work = await mkdtemp(join(tmpdir(), "larder-gc-scale-"));
  let pg: PostgresHandle | undefined;
  try {
    if (o.postgres) pg = await startPostgres();
    const url = pg ? await pg.createDatabase() : `sqlite://${join(work, "larder.db")}`;
    const db = await openDb(url);
    try {
      await db.migrate();
      const now = Date.now();
      const cacheId = await createSynthCache(db, "gc", true, 7 * DAY);
      const synth = await synthesizeCache(db, { cacheId, objects: o.objects, closureSize: o.closure, expiredShare: o.expired, now, log: o.log });
      o.log(`synthesized ${synth.objects} objects (${synth.expired} expired) in ${synth.seconds.toFixed(1)} s`);
      const cpu = process.cpuUsage();
      const written = writtenBytes();
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      const gc = await timedGc(db, join(work, "storage"), now, o.batch);
      delay.disable();
      const gcCpu = process.cpuUsage(cpu);
      const gcWritten = writtenBytes() - written;
      const dangling = await danglingReferences(db, cacheId);
      // After GC: the access-time updates of a first measurement would keep paths from it.
      let missing: number | undefined;
      if (o.missing) {
        const left = await db.kysely.selectFrom("object").select("store_path_hash").where("cache_id", "=", cacheId).execute();
        missing = await missingPaths10k(db, cacheId, left.map((r) => r.store_path_hash));
      }
      return {
        backend: o.postgres ? "postgres" : "sqlite",
        objects: synth.objects,
        expired: synth.expired,
        deleted: gc.deleted,
        dangling_refs: dangling,
        synth_s: Math.round(synth.seconds * 10) / 10,
        objects_step_s: Math.round(gc.objectsSeconds * 100) / 100,
        total_s: Math.round(gc.totalSeconds * 100) / 100,
        gc_delete_objects_per_s: Math.round(gc.deleted / gc.objectsSeconds),
        gc_cpu_s: Math.round((gcCpu.user + gcCpu.system) / 1e4) / 100,
        gc_write_mb: Math.round(gcWritten / 1e6),
        gc_loop_delay_p99_ms: Math.round(delay.percentile(99) / 1e5) / 10,
        gc_loop_delay_max_ms: Math.round(delay.max / 1e5) / 10,
        ...(missing !== undefined && { missing_paths_10k_ms: missing }),
      };
    } finally {
      await db.close();
    }
  } finally {
    await pg?.stop();
    await rm(work, { recursive: true, force: true, maxRetries: 3 });
  }
}

function positiveInteger(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`gc-scale: ${flag} must be a positive whole number, got "${text}"\n`);
    process.exit(2);
  }
  return n;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      objects: { type: "string", default: "300000" },
      closure: { type: "string", default: "100" },
      expired: { type: "string", default: "0.2" },
      postgres: { type: "boolean", default: false },
      missing: { type: "boolean", default: false },
      // Candidates per object batch (default: the server's); for measuring the batch size's effect.
      batch: { type: "string" },
    },
  });
  const r = await gcScale({
    objects: Number(values.objects),
    closure: Number(values.closure),
    expired: Number(values.expired),
    postgres: values.postgres,
    missing: values.missing,
    ...(values.batch !== undefined && { batch: positiveInteger("--batch", values.batch) }),
    log: (s) => process.stderr.write(`gc-scale: ${s}\n`),
  });
  process.stdout.write(`${JSON.stringify(r)}\n`);
  if (r.dangling_refs !== 0 || r.deleted !== r.expired) process.exitCode = 1;
}
