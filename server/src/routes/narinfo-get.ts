/**
 * GET/HEAD /{cache}/<hash>.narinfo — the hot path: one indexed lookup, then text that is
 * rendered from stored fields and a signature made once per object and key. A miss is as cheap
 * as a hit; the access time is recorded off the request path.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { errorBody, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findObject, saveSignature } from "../db/objects.ts";
import { narInfoFor } from "../narinfo-view.ts";
import { narInfoHash } from "./paths.ts";

// A miss is answered here rather than thrown: the error path (stack capture, error hook) cost
// more than the lookup. The body is the error handler's, rendered once.
const MISS = new ServerError("NoSuchObject");
const MISS_BODY = JSON.stringify(errorBody(MISS.kind, MISS.message));

export function registerNarInfoGet(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string; file: string } }>("/:cache/:file", async (req, reply) => {
    const hash = narInfoHash(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const found = await findObject(ctx.db, cache.id, hash);
    if (!found) {
      ctx.metrics.narinfo.inc({ result: "miss" });
      return reply.code(MISS.status).type("application/json; charset=utf-8").send(MISS_BODY);
    }
    ctx.metrics.narinfo.inc({ result: "hit" });
    const { text, newSignature } = narInfoFor(cache, found);
    if (newSignature !== undefined) {
      saveSignature(ctx.db, found.object.id, newSignature, cache.key_version).catch((e) => req.log.warn({ err: e }, "could not store signature"));
    }
    ctx.accessTracker.touch(found.object.id);
    return reply.type("text/x-nix-narinfo").send(text);
  });
}
