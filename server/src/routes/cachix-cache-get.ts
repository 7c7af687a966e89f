/**
 * GET /api/v1/cache/{name} — Cachix's `BinaryCache`, which `cachix use` turns into a substituter
 * and trusted keys (and, for a private cache, a netrc entry for `uri`'s host), and `cachix push`
 * reads its compression from. All seven fields must be there for the client to decode it.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { requireCache } from "../http/cache-access.ts";
import { cachePublicKey } from "../narinfo-view.ts";
import { formatPublicKey } from "../nix/signing.ts";
import { registeredKeys } from "../cachix/keys.ts";
import { cachixCacheUri } from "../cachix/uri.ts";
import type { BinaryCache } from "../cachix/types.ts";

export function registerCachixCacheGet(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { name: string } }>("/api/v1/cache/:name", async (req, reply) => {
    const { cache, permissions } = await requireCache(ctx, req, req.params.name, "pull");
    const body: BinaryCache = {
      name: cache.name,
      uri: cachixCacheUri(ctx.config, req, cache.name),
      isPublic: Boolean(cache.is_public),
      publicSigningKeys: [cachePublicKey(cache), ...(await registeredKeys(ctx.db, cache.id)).map(formatPublicKey)],
      githubUsername: "",
      permission: permissions.configureCache ? "Admin" : permissions.push ? "Write" : "Read",
      // Uploads in the stored compression are kept as sent instead of being recompressed.
      preferredCompressionMethod: ctx.config.compression.type === "xz" ? "XZ" : "ZSTD",
    };
    return reply.send(body);
  });
}
