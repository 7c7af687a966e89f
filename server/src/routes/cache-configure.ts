/**
 * PATCH /_api/v1/cache-config/{cache} — permission `cr`, plus `cq` when the retention period
 * actually changes. attic's client sends `retention_period: "Global"` on every configure call;
 * requiring `cq` for a no-op would make plain `attic cache configure --public` fail.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { accessError, requireCache } from "../http/cache-access.ts";
import { updateCache, type CachePatch } from "../db/caches.ts";
import { cacheConfigPatch, describeZodError } from "../api/cache-config-types.ts";
import { cacheKeypair } from "./cache-create.ts";
import { bucketLayoutRefusal } from "../bucket/settings.ts";
export function registerCacheConfigure(app: FastifyInstance, ctx: AppContext): void {
  app.patch<{ Params: { cache: string } }>("/_api/v1/cache-config/:cache", async (req, reply) => {
    const { cache, permissions } = await requireCache(ctx, req, req.params.cache, "configureCache");
    const parsed = cacheConfigPatch.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid CacheConfig: ${describeZodError(parsed.error)}`);
    const b = parsed.data;
    const patch: CachePatch = {};
    if (b.keypair !== undefined) patch.keypair = cacheKeypair(cache.name, b.keypair);
    if (b.is_public !== undefined) patch.isPublic = b.is_public;
    if (b.store_dir !== undefined) patch.storeDir = b.store_dir;
    if (b.priority !== undefined) patch.priority = b.priority;
    if (b.upstream_cache_key_names !== undefined) patch.upstreamCacheKeyNames = b.upstream_cache_key_names;
    const willBePublic = b.is_public ?? cache.is_public === 1;
    if (b.bucket_layout === true) {
      const refusal = bucketLayoutRefusal(ctx, willBePublic);
      if (refusal) throw refusal;
    }
    if (b.bucket_layout !== undefined) patch.bucketLayout = b.bucket_layout;
    // Making a cache private takes its layout out of the bucket.
    else if (!willBePublic && cache.bucket_layout === 1) patch.bucketLayout = false;
    if (b.retention_period !== undefined) {
      const next = b.retention_period === "Global" ? null : b.retention_period.Period;
      if (next !== cache.retention_period) {
        if (!permissions.configureCacheRetention) {
          throw accessError("configureCacheRetention", cache.name);
        }
        patch.retentionPeriod = next;
      }
    }
    const modifiable = ["keypair", "is_public", "store_dir", "priority", "upstream_cache_key_names", "retention_period", "bucket_layout"] as const;
    if (!modifiable.some((k) => b[k] !== undefined)) throw badRequest("No modifiable fields were set.");
    if (Object.keys(patch).length > 0) await updateCache(ctx.db, cache.id, patch);
    ctx.caches.invalidate(cache.name);
    // Key, priority, store dir and visibility are all in the layout's texts.
    if (cache.bucket_layout === 1 || patch.bucketLayout === true) ctx.bucketLayout?.cacheChanged(cache.id);
    return reply.code(200).send();
  });
}
