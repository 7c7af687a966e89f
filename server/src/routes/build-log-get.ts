/**
 * GET/HEAD /{cache}/log/<drv base name> — the build log `nix log --store …` asks for (Nix finds
 * the derivation through the narinfo's Deriver). Readable as the cache's narinfos are.
 */
import { pipeline } from "node:stream";
import zlib from "node:zlib";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findBuildLog } from "../db/build-logs.ts";
import { drvBaseName } from "./paths.ts";

export function registerBuildLogGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; drv: string } }>(`${prefix}/:cache/log/:drv`, async (req, reply) => {
    const drv = drvBaseName(req.params.drv);
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const log = await findBuildLog(ctx.db, cache.id, drv.baseName);
    if (!log) throw new ServerError("NoSuchObject");
    reply.type("text/plain; charset=utf-8").header("content-length", log.size);
    if (req.method === "HEAD") {
      reply.hijack();
      reply.raw.writeHead(200, reply.getHeaders() as Record<string, string | number>);
      reply.raw.end();
      return reply;
    }
    const stored = await ctx.pool.get(log.backend).storage.get(log.storage_key);
    return reply.send(pipeline(stored, zlib.createZstdDecompress(), () => {}));
  });
}
