/** POST /_api/v1/cache-config/{cache} — attic's CreateCacheRequest; permission `cc`. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { accessError, assertCacheName, unauthorized } from "../http/cache-access.ts";
import { caller } from "../http/caller.ts";
import { canDiscover } from "../auth/permissions.ts";
import { createCache } from "../db/caches.ts";
import { createCacheRequest, describeZodError } from "../api/cache-config-types.ts";
import { bucketLayoutRefusal } from "../bucket/settings.ts";
import { formatSecretKey, generateSecretKey, parseSecretKey } from "../nix/signing.ts";

export function cacheKeypair(name: string, keypair: "Generate" | { Keypair: string }): string {
  if (keypair === "Generate") return formatSecretKey(generateSecretKey(name));
  try {
    return formatSecretKey(parseSecretKey(keypair.Keypair));
  } catch (e) {
    throw badRequest(`keypair: ${(e as Error).message}`);
  }
}

export function registerCacheCreate(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { cache: string } }>("/_api/v1/cache-config/:cache", async (req, reply) => {
    const name = req.params.cache;
    assertCacheName(name);
    const c = await caller(ctx, req);
    const permissions = c.permissionsFor(name);
    if (!permissions.createCache) {
      throw canDiscover(permissions) ? accessError("createCache", name) : unauthorized(c, name);
    }
    const parsed = createCacheRequest.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid CreateCacheRequest: ${describeZodError(parsed.error)}`);
    const r = parsed.data;
    if (r.bucket_layout === true) {
      const refusal = bucketLayoutRefusal(ctx, r.is_public);
      if (refusal) throw refusal;
    }
    await createCache(ctx.db, {
      name,
      keypair: cacheKeypair(name, r.keypair),
      isPublic: r.is_public,
      storeDir: r.store_dir,
      priority: r.priority,
      upstreamCacheKeyNames: r.upstream_cache_key_names,
      retentionPeriod: null,
      bucketLayout: r.bucket_layout === true,
    });
    ctx.caches.invalidate(name);
    req.log.info({ cache: name, sub: c.claims?.sub }, "cache created");
    return reply.code(200).send();
  });
}
