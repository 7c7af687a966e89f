/** GET /_api/v1/cache-config/{cache} and its alias GET /{cache}/attic-cache-info. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.ts";
import { requireCache } from "../http/cache-access.ts";
import { apiEndpoint, nixPushEndpoint, substituterEndpoint } from "../http/endpoints.ts";
import { upstreamKeyNames } from "../db/caches.ts";
import { cachePublicKey } from "../narinfo-view.ts";
import type { CacheConfigResponse } from "../api/cache-config-types.ts";

export function registerCacheConfigGet(app: FastifyInstance, ctx: AppContext): void {
  const handler = async (req: FastifyRequest<{ Params: { cache: string } }>, reply: FastifyReply) => {
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const body: CacheConfigResponse = {
      substituter_endpoint: substituterEndpoint(ctx.config, req, cache.name),
      api_endpoint: apiEndpoint(ctx.config, req),
      nix_push_endpoint: nixPushEndpoint(ctx.config, req, cache.name),
      public_key: cachePublicKey(cache),
      is_public: cache.is_public === 1,
      store_dir: cache.store_dir,
      priority: cache.priority,
      upstream_cache_key_names: upstreamKeyNames(cache),
      retention_period: cache.retention_period === null ? "Global" : { Period: cache.retention_period },
      ...(ctx.config.compression.type === "zstd" && { upload_zstd_level: ctx.config.compression.level }),
      bucket_layout: cache.bucket_layout === 1,
      ...(cache.bucket_layout === 1 && ctx.config.bucketLayout.publicUrl !== undefined && { bucket_endpoint: `${ctx.config.bucketLayout.publicUrl}${cache.name}` }),
    };
    return reply.send(body);
  };
  app.get("/_api/v1/cache-config/:cache", handler);
  app.get("/:cache/attic-cache-info", handler);
}
