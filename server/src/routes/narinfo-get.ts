/**
 * GET/HEAD /{cache}/<hash>.narinfo — the hot path: the answer comes from the in-process cache of
 * rendered narinfos (narinfo-cache.ts, about a second, dropped by every write through this
 * process) or from one indexed lookup, rendered from stored fields and a signature made once per
 * object and key. A miss is as cheap as a hit; the access time is recorded off the request path,
 * for cached hits too. Most of these requests are answered before the framework by
 * http/fast-reads.ts, from the same functions; this route answers the rest.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { errorBody, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findObject, findObjectNow, type ObjectWithNar } from "../db/objects.ts";
import { NOT_NOW } from "../db/connect.ts";
import { narInfoFor } from "../narinfo-view.ts";
import type { CachedAnswer } from "../narinfo-cache.ts";
import type { CacheRow } from "../db/caches.ts";
import { narInfoHash } from "./paths.ts";

export const NARINFO_ROUTE = "/:cache/:file";
export const NARINFO_TYPE = "text/x-nix-narinfo";
export const JSON_TYPE = "application/json; charset=utf-8";

// A miss is answered here rather than thrown: the error path (stack capture, error hook) cost
// more than the lookup. The body is the error handler's, rendered once.
export const MISS = new ServerError("NoSuchObject");
export const MISS_BODY = Buffer.from(JSON.stringify(errorBody(MISS.kind, MISS.message)));

async function lookUp(ctx: AppContext, cache: CacheRow, hash: string): Promise<CachedAnswer> {
  const ticket = ctx.narInfos.ticket();
  return answerFor(ctx, cache, hash, ticket, await findObject(ctx.db, cache.id, hash));
}

/** The lookup without promises where the database answers in this thread (SQLite); undefined when it cannot now. */
function lookUpNow(ctx: AppContext, cache: CacheRow, hash: string): CachedAnswer | Promise<CachedAnswer> | undefined {
  const ticket = ctx.narInfos.ticket();
  try {
    const found = findObjectNow(ctx.db, cache.id, hash);
    return found === NOT_NOW ? undefined : answerFor(ctx, cache, hash, ticket, found);
  } catch (e) {
    // Failed as through the query layer: a rejected lookup, never a throw (the fast path hands it to the framework, which answers it).
    return Promise.reject(e);
  }
}

function answerFor(ctx: AppContext, cache: CacheRow, hash: string, ticket: number, found: ObjectWithNar | undefined): CachedAnswer {
  if (!found) {
    ctx.narInfos.set(ticket, cache.id, hash, null);
    return null;
  }
  const { text, newSignature } = narInfoFor(cache, found);
  if (newSignature !== undefined) ctx.accessTracker.signed(found.object.id, newSignature, cache.key_version);
  const answer = { body: Buffer.from(text), objectId: found.object.id, keypair: cache.keypair, keyVersion: cache.key_version };
  ctx.narInfos.set(ticket, cache.id, hash, answer);
  return answer;
}

/** The answer for `hash` in `cache`: from memory when it is there (no promise), else looked up. */
export function narInfoAnswer(ctx: AppContext, cache: CacheRow, hash: string): CachedAnswer | Promise<CachedAnswer> {
  const answer = ctx.narInfos.get(cache.id, hash);
  // Text signed with a key the cache no longer has (changed by another api-server) is stale.
  if (answer === undefined || (answer !== null && (answer.keyVersion !== cache.key_version || answer.keypair !== cache.keypair))) {
    return lookUpNow(ctx, cache, hash) ?? lookUp(ctx, cache, hash);
  }
  return answer;
}

/** What every answered lookup counts: the hit or miss, and a hit's access time. */
export function countNarInfo(ctx: AppContext, answer: CachedAnswer): void {
  if (answer === null) {
    ctx.metrics.narinfo.inc({ result: "miss" });
    return;
  }
  ctx.metrics.narinfo.inc({ result: "hit" });
  ctx.accessTracker.touch(answer.objectId);
}

export function registerNarInfoGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; file: string } }>(`${prefix}${NARINFO_ROUTE}`, async (req, reply) => {
    const hash = narInfoHash(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const answer = await narInfoAnswer(ctx, cache, hash);
    countNarInfo(ctx, answer);
    if (answer === null) return reply.code(MISS.status).type(JSON_TYPE).send(MISS_BODY);
    return reply.type(NARINFO_TYPE).send(answer.body);
  });
}
