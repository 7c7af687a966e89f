/**
 * GET/HEAD /{cache}/<hash>.narinfo — the hot path: the answer comes from the in-process cache of
 * rendered narinfos (narinfo-cache.ts, about a second, dropped by every write through this
 * process) or from one indexed lookup, rendered from stored fields and a signature made once per
 * object and key. A miss is as cheap as a hit; the access time is recorded off the request path,
 * for cached hits too.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { errorBody, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findObject, saveSignature } from "../db/objects.ts";
import { narInfoFor } from "../narinfo-view.ts";
import type { CachedAnswer } from "../narinfo-cache.ts";
import type { CacheRow } from "../db/caches.ts";
import { narInfoHash } from "./paths.ts";

// A miss is answered here rather than thrown: the error path (stack capture, error hook) cost
// more than the lookup. The body is the error handler's, rendered once.
const MISS = new ServerError("NoSuchObject");
const MISS_BODY = JSON.stringify(errorBody(MISS.kind, MISS.message));

async function lookUp(ctx: AppContext, cache: CacheRow, hash: string, onSignFailure: (e: unknown) => void): Promise<CachedAnswer> {
  const ticket = ctx.narInfos.ticket();
  const found = await findObject(ctx.db, cache.id, hash);
  if (!found) {
    ctx.narInfos.set(ticket, cache.id, hash, null);
    return null;
  }
  const { text, newSignature } = narInfoFor(cache, found);
  if (newSignature !== undefined) saveSignature(ctx.db, found.object.id, newSignature, cache.key_version).catch(onSignFailure);
  const answer = { text, objectId: found.object.id, keypair: cache.keypair, keyVersion: cache.key_version };
  ctx.narInfos.set(ticket, cache.id, hash, answer);
  return answer;
}

export function registerNarInfoGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/:file`, async (req, reply) => {
    const hash = narInfoHash(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    let answer = ctx.narInfos.get(cache.id, hash);
    // Text signed with a key the cache no longer has (changed by another api-server) is stale.
    if (answer === undefined || (answer !== null && (answer.keyVersion !== cache.key_version || answer.keypair !== cache.keypair))) {
      answer = await lookUp(ctx, cache, hash, (e) => req.log.warn({ err: e }, "could not store signature"));
    }
    if (answer === null) {
      ctx.metrics.narinfo.inc({ result: "miss" });
      return reply.code(MISS.status).type("application/json; charset=utf-8").send(MISS_BODY);
    }
    ctx.metrics.narinfo.inc({ result: "hit" });
    ctx.accessTracker.touch(answer.objectId);
    return reply.type("text/x-nix-narinfo").send(answer.text);
  });
}
