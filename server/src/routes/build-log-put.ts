/**
 * PUT /{cache}/log/<drv base name> — a build log, as `nix store copy-log --to` and
 * `larder push --logs` send it (plain, or with a Content-Encoding). It replaces an earlier log of
 * the same derivation; bounded by build-logs.max-size (413).
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { requireCache } from "../http/cache-access.ts";
import { logEncoding, logTooLarge, storeBuildLog } from "../build-log-store.ts";
import { drvBaseName } from "./paths.ts";

export function registerBuildLogPut(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.put<{ Params: { cache: string; drv: string } }>(`${prefix}/:cache/log/:drv`, async (req, reply) => {
    const drv = drvBaseName(req.params.drv);
    const { cache } = await requireCache(ctx, req, req.params.cache, "push");
    const encoding = logEncoding(req.headers["content-encoding"]);
    const max = ctx.config.buildLogs.maxBytes;
    const declared = Number(req.headers["content-length"]);
    if (encoding === "none" && Number.isFinite(declared) && declared > max) {
      req.raw.resume();
      throw logTooLarge(max);
    }
    await storeBuildLog({ db: ctx.db, pool: ctx.pool, cacheId: cache.id, cacheName: cache.name, drvName: drv.baseName, drvHash: drv.hash, body: req.raw, encoding, maxBytes: max });
    ctx.bucketLayout?.logVisible(cache, drv.baseName);
    return reply.code(200).type("text/plain").send("");
  });
}
