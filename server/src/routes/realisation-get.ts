/**
 * GET/HEAD /{cache}/realisations/<drv output id>.doi — served, signed by the cache's key, only
 * while its output path and the realisations it depends on are served by this cache.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findServedRealisation, saveRealisationSignature } from "../db/realisations.ts";
import { realisationFor } from "../realisation-view.ts";
import { realisationFileId } from "./paths.ts";

export function registerRealisationGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/realisations/:file`, async (req, reply) => {
    const id = realisationFileId(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const row = await findServedRealisation(ctx.db, cache.id, id);
    if (!row) throw new ServerError("NoSuchObject");
    const { text, newSignature } = realisationFor(cache, row);
    if (newSignature !== undefined) {
      saveRealisationSignature(ctx.db, row.id, newSignature, cache.key_version).catch((e: unknown) => req.log.warn({ err: e }, "could not store signature"));
    }
    return reply.type("application/json").send(text);
  });
}
