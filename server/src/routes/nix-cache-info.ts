/**
 * /{cache}/nix-cache-info. GET tells Nix the store dir, priority and that mass queries are
 * welcome. Nix PUTs one when it finds none; ours always exists, so a PUT is accepted (with push
 * permission) and changes nothing.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { requireCache } from "../http/cache-access.ts";
import { readSmallBody } from "../http/body.ts";
import type { CacheRow } from "../db/caches.ts";

export const NIX_CACHE_INFO_ROUTE = "/:cache/nix-cache-info";
export const NIX_CACHE_INFO_TYPE = "text/x-nix-cache-info";

export function nixCacheInfo(cache: CacheRow): string {
  return `WantMassQuery: 1\nStoreDir: ${cache.store_dir}\nPriority: ${cache.priority}\n`;
}

export function registerNixCacheInfo(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string } }>(`${prefix}${NIX_CACHE_INFO_ROUTE}`, async (req, reply) => {
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    return reply.type(NIX_CACHE_INFO_TYPE).send(nixCacheInfo(cache));
  });
  app.put<{ Params: { cache: string } }>(`${prefix}${NIX_CACHE_INFO_ROUTE}`, async (req, reply) => {
    await requireCache(ctx, req, req.params.cache, "push");
    await readSmallBody(req.raw, 64 * 1024, "nix-cache-info");
    return reply.code(200).type("text/plain").send("");
  });
}
