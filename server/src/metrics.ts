/** Prometheus metrics, one registry per server instance (tests run several in one process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "method" | "status">;
  readonly latency: Histogram<"route" | "method">;
  readonly narinfo: Counter<"result">;
  readonly bytesServed: Counter;
  readonly bytesIngested: Counter<"protocol">;
  readonly uploadsInFlight: Gauge;
  readonly gcRuns: Counter<"result">;
  readonly gcDeleted: Counter<"level">;
  readonly gcBytesFreed: Counter;
  readonly backendErrors: Counter<"backend">;
  /** Deployments that ended, by outcome (succeeded, failed, rolled-back, superseded). */
  readonly deployments: Counter<"outcome">;
  readonly rolloutDuration: Histogram<"outcome">;
  /** Deploy agents by state, read from the database at scrape time (the same on every api-server). */
  readonly deployAgents: Gauge<"state">;
  /** Where deployAgents reads its counts; set once the database is open. */
  agentStates?: () => Promise<Map<string, number>>;
  readonly bucketLayoutFailures: Counter<"op">;
  readonly bucketLayoutDeferred: Counter<"op">;
  readonly storageWrites: Counter<"backend">;
  readonly storageSkips: Counter<"backend" | "reason">;
  readonly storageBytes: Gauge<"backend">;
}

/** Every agent state, so a state with no agent shows 0 rather than vanishing. */
const AGENT_STATES = ["idle", "prefetching", "prefetched", "waiting", "migrating", "activating", "checking", "healthy", "failed", "rolling-back", "rolled-back", "lost"];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "larder_" });
  const registers = [registry];
  const metrics: Metrics = {
    registry,
    requests: new Counter({ name: "larder_http_requests_total", help: "HTTP requests by route, method and status.", labelNames: ["route", "method", "status"], registers }),
    latency: new Histogram({
      name: "larder_http_request_duration_seconds",
      help: "Time to the response head, by route and method.",
      labelNames: ["route", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers,
    }),
    narinfo: new Counter({ name: "larder_narinfo_requests_total", help: "narinfo lookups by result (hit or miss).", labelNames: ["result"], registers }),
    bytesServed: new Counter({ name: "larder_nar_bytes_served_total", help: "NAR bytes sent to clients (redirects not counted).", registers }),
    bytesIngested: new Counter({ name: "larder_nar_bytes_ingested_total", help: "Uncompressed NAR bytes received, by push protocol.", labelNames: ["protocol"], registers }),
    uploadsInFlight: new Gauge({ name: "larder_uploads_in_flight", help: "NAR uploads being received right now.", registers }),
    gcRuns: new Counter({ name: "larder_gc_runs_total", help: "Garbage collection runs by result.", labelNames: ["result"], registers }),
    gcDeleted: new Counter({ name: "larder_gc_deleted_total", help: "Items deleted by GC, by level (objects, nars, storage_objects).", labelNames: ["level"], registers }),
    gcBytesFreed: new Counter({ name: "larder_gc_bytes_freed_total", help: "Stored bytes freed by GC.", registers }),
    backendErrors: new Counter({ name: "larder_backend_errors_total", help: "Database and storage errors.", labelNames: ["backend"], registers }),
    deployments: new Counter({ name: "larder_deployments_total", help: "Deployments that ended, by outcome.", labelNames: ["outcome"], registers }),
    rolloutDuration: new Histogram({
      name: "larder_deploy_rollout_duration_seconds",
      help: "From activation to the end of a rollout, by outcome.",
      labelNames: ["outcome"],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600],
      registers,
    }),
    deployAgents: new Gauge({
      name: "larder_deploy_agents",
      help: "Deploy agents by state, across all caches and environments.",
      labelNames: ["state"],
      registers,
      async collect() {
        if (!metrics.agentStates) return;
        // A scrape must answer while the database is down (that is when it matters): keep the last counts.
        const counts = await metrics.agentStates().catch(() => undefined);
        if (counts) for (const state of AGENT_STATES) this.set({ state }, counts.get(state) ?? 0);
      },
    }),
    bucketLayoutFailures: new Counter({ name: "larder_bucket_layout_failures_total", help: "Bucket-layout writes that failed (the push succeeded; the next sync retries), by what was written (path, log, realisation, sync).", labelNames: ["op"], registers }),
    bucketLayoutDeferred: new Counter({ name: "larder_bucket_layout_deferred_total", help: "Bucket-layout writes left for a later sync (a reference not yet in the layout, or removed meanwhile), by what was written.", labelNames: ["op"], registers }),
    storageWrites: new Counter({ name: "larder_storage_writes_total", help: "New objects stored, by storage backend.", labelNames: ["backend"], registers }),
    storageSkips: new Counter({ name: "larder_storage_backend_skipped_total", help: "Storage backends passed over for a new object, by backend and reason (full, failing, draining).", labelNames: ["backend", "reason"], registers }),
    storageBytes: new Gauge({ name: "larder_storage_backend_bytes", help: "Bytes stored per storage backend, as last read from the database (only with capacities or byte-weighing strategies).", labelNames: ["backend"], registers }),
  };
  return metrics;
}
