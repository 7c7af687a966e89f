/** DELETE /_api/v1/cache-config/{cache} — permission `cd`. Its NARs are left to GC. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { destroyCache } from "../db/caches.ts";

export function registerCacheDestroy(app: FastifyInstance, ctx: AppContext): void {
  app.delete<{ Params: { cache: string } }>("/_api/v1/cache-config/:cache", async (req, reply) => {
    const { cache, caller } = await requireCache(ctx, req, req.params.cache, "destroyCache");
    const gone = await destroyCache(ctx.db, cache.id, ctx.config.softDeleteCaches);
    ctx.caches.invalidate(cache.name);
    if (!gone) throw new ServerError("NoSuchCache");
    // Its bucket layout goes now, not at the next GC.
    ctx.bucketLayout?.cacheChanged(cache.id);
    req.log.info({ cache: cache.name, sub: caller.claims?.sub }, "cache destroyed");
    return reply.code(200).send();
  });
}
