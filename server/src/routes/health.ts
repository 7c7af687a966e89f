/**
 * Health for load balancers and orchestrators, answered whatever the Host header (a load
 * balancer probes a target by its private address):
 * - GET /_api/v1/health/live — liveness: the process serves HTTP. Never touches the database or
 *   storage, so a shared dependency's outage cannot get every instance replaced at once.
 * - GET /_api/v1/health — readiness: the database answers and accepts writes, and storage answers;
 *   503 otherwise, so a balancer sends traffic elsewhere until it passes again.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";

export const READINESS_PATH = "/_api/v1/health";
export const LIVENESS_PATH = "/_api/v1/health/live";
/** Paths exempt from the allowed-hosts check. */
export const HEALTH_PATHS: ReadonlySet<string> = new Set([READINESS_PATH, LIVENESS_PATH]);

const PROBE_TIMEOUT_MS = 3000;

async function probe(what: () => Promise<void>, describe: (e: unknown) => string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      what(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), PROBE_TIMEOUT_MS);
      }),
    ]);
    return "ok";
  } catch (e) {
    return describe(e);
  } finally {
    clearTimeout(timer);
  }
}

class Degraded extends Error {
  readonly backends: string[];
  constructor(backends: string[]) {
    super("some storage backends are unavailable");
    this.backends = backends;
  }
}

export function registerHealth(app: FastifyInstance, ctx: AppContext): void {
  app.get(LIVENESS_PATH, async (_req, reply) => reply.header("cache-control", "no-store").send({ status: "ok" }));

  app.get(READINESS_PATH, async (_req, reply) => {
    const [database, storage] = await Promise.all([
      probe(() => ctx.db.checkWritable(), (e) => (ctx.db.isReadOnlyError(e) ? "read-only" : "unavailable")),
      probe(async () => {
        const states = await ctx.pool.check();
        const down = [...states].filter(([, s]) => s !== "ok").map(([n]) => n);
        // Some backends down: what they hold is unreadable, but other servers would fail alike and
        // new objects go elsewhere, so the server stays in rotation (the failing ones are named).
        if (down.length === states.size) throw new Error("every storage backend is unavailable");
        if (down.length > 0) throw new Degraded(down);
      }, (e) => (e instanceof Degraded ? `degraded: ${e.backends.join(", ")} unavailable` : "unavailable")),
    ]);
    const healthy = database === "ok" && (storage === "ok" || storage.startsWith("degraded"));
    if (!healthy) ctx.metrics.backendErrors.inc({ backend: database === "ok" ? "storage" : "database" });
    return reply.code(healthy ? 200 : 503).header("cache-control", "no-store").send({ status: healthy ? "ok" : "unavailable", database, storage });
  });
}
