/** GET /metrics — Prometheus text format. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";

export function registerMetrics(app: FastifyInstance, ctx: AppContext): void {
  app.get("/metrics", async (_req, reply) => {
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
