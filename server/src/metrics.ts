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
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "larder_" });
  const registers = [registry];
  return {
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
  };
}
