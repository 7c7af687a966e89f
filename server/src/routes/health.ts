/** GET /_api/v1/health — for load balancers: 200 when the database and storage answer, else 503. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";

async function probe(what: () => Promise<void>, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      what(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), timeoutMs);
      }),
    ]);
    return "ok";
  } catch {
    return "unavailable";
  } finally {
    clearTimeout(timer);
  }
}

export function registerHealth(app: FastifyInstance, ctx: AppContext): void {
  app.get("/_api/v1/health", async (_req, reply) => {
    const [database, storage] = await Promise.all([probe(() => ctx.db.check(), 3000), probe(() => ctx.storage.check(), 3000)]);
    const healthy = database === "ok" && storage === "ok";
    if (!healthy) ctx.metrics.backendErrors.inc({ backend: database === "ok" ? "storage" : "database" });
    return reply.code(healthy ? 200 : 503).header("cache-control", "no-store").send({ status: healthy ? "ok" : "unavailable", database, storage });
  });
}
