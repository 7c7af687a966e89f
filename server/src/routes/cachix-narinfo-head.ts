/**
 * HEAD /api/v1/cache/{name}/{hash}.narinfo — 200 when the cache serves the path, 404 when not:
 * `cachix import` uploads only what answers 404.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { requireCache } from "../http/cache-access.ts";
import { findObject } from "../db/objects.ts";
import { narInfoHash } from "./paths.ts";

export function registerCachixNarinfoHead(app: FastifyInstance, ctx: AppContext): void {
  app.head<{ Params: { name: string; file: string } }>("/api/v1/cache/:name/:file", async (req, reply) => {
    const hash = narInfoHash(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.name, "pull");
    const found = await findObject(ctx.db, cache.id, hash);
    return reply.code(found ? 200 : 404).send();
  });
}
