/**
 * The two reads Nix makes most, answered from the server's `request` event before the framework
 * sees them: GET/HEAD `/{cache}/<hash>.narinfo` and `/{cache}/nix-cache-info` (and the same under
 * PUSH_PREFIX). Fastify's routing, hooks and reply object cost more than the answer itself
 * (docs/PERFORMANCE.md). Only the plain case is taken here, decided from what is already in
 * memory or one query away: a URL of exactly that shape (no query, no escapes), an allowed Host,
 * no body, an existing cache, no token or one verified before, and pull permission. Everything
 * else — a new, bad or revoked token, a 401/403/404 about the cache, a failed query — goes to
 * the framework, whose routes (narinfo-get.ts, nix-cache-info.ts) answer
 * from the same functions. server/test/fast-reads.test.ts sends the same requests both ways and
 * compares the answers, headers, metrics and access times.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AppContext } from "../context.ts";
import type { CachedAnswer } from "../narinfo-cache.ts";
import type { CacheRow } from "../db/caches.ts";
import { settledCaller, type Caller } from "./caller.ts";
import { hasBody } from "./timeouts.ts";
import { recordResponse } from "./record.ts";
import { requestId } from "./request-id.ts";
import { PUSH_PREFIX } from "../routes/push-url.ts";
import { countNarInfo, JSON_TYPE, MISS, MISS_BODY, NARINFO_ROUTE, NARINFO_TYPE, narInfoAnswer } from "../routes/narinfo-get.ts";
import { NIX_CACHE_INFO_ROUTE, NIX_CACHE_INFO_TYPE, nixCacheInfo } from "../routes/nix-cache-info.ts";

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

// Cache names as isValidCacheName accepts them; store-path hashes in nix-base32.
const URL_SHAPE = /^(\/_push)?\/([A-Za-z0-9][A-Za-z0-9\-_+]{0,49})\/(?:nix-cache-info|([0-9a-df-np-sv-z]{32})\.narinfo)$/;

const PUBLIC = ["x-attic-cache-visibility", "public"] as const;

let answered = 0;
/** Requests answered by the fast path in this process (for the test that compares the two paths). */
export function fastReadsAnswered(): number {
  return answered;
}

/** Wraps the framework's handler `next` with the fast path. */
export function withFastReads(ctx: AppContext, next: RequestHandler): RequestHandler {
  const allowedHosts = ctx.config.allowedHosts;
  const routes = {
    narinfo: [NARINFO_ROUTE, `${PUSH_PREFIX}${NARINFO_ROUTE}`],
    info: [NIX_CACHE_INFO_ROUTE, `${PUSH_PREFIX}${NIX_CACHE_INFO_ROUTE}`],
  } as const;

  const send = (req: IncomingMessage, res: ServerResponse, route: string, started: number, status: number, isPublic: boolean, type: string, body: Buffer | string): void => {
    const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
    res.writeHead(status, isPublic ? [...PUBLIC, "content-type", type, "content-length", String(length)] : ["content-type", type, "content-length", String(length)]);
    res.end(body);
    answered++;
    recordResponse(ctx, route, req.method as string, req.url as string, status, performance.now() - started, () => ctx.log.child({ reqId: requestId(req) }));
  };

  // Anything this path cannot settle (a failed query included) is the framework's to answer; it asks again.
  const failed = (req: IncomingMessage, res: ServerResponse, e: unknown): void => {
    ctx.log.error({ reqId: requestId(req), err: e }, "request failed");
    res.destroy();
  };

  const serve = (req: IncomingMessage, res: ServerResponse, m: RegExpExecArray, started: number, cache: CacheRow, caller: Caller | undefined): void => {
    const name = m[2] as string;
    if (caller === undefined || (!cache.is_public && !caller.permissionsFor(name).pull)) return next(req, res);
    const pushed = m[1] === undefined ? 0 : 1;
    const hash = m[3];
    if (hash === undefined) {
      return send(req, res, routes.info[pushed], started, 200, Boolean(cache.is_public), NIX_CACHE_INFO_TYPE, nixCacheInfo(cache));
    }
    const answer = (a: CachedAnswer): void => {
      countNarInfo(ctx, a);
      if (a === null) send(req, res, routes.narinfo[pushed], started, MISS.status, Boolean(cache.is_public), JSON_TYPE, MISS_BODY);
      else send(req, res, routes.narinfo[pushed], started, 200, Boolean(cache.is_public), NARINFO_TYPE, a.body);
    };
    const found = narInfoAnswer(ctx, cache, hash);
    if (found instanceof Promise) found.then(answer, () => next(req, res)).catch((e: unknown) => failed(req, res, e));
    else answer(found);
  };

  const withCache = (req: IncomingMessage, res: ServerResponse, m: RegExpExecArray, started: number, cache: CacheRow | null | undefined): void => {
    // No such cache: the framework decides between 401 and 404 and says why.
    if (cache === undefined || cache === null) return next(req, res);
    const caller = settledCaller(ctx, req.headers.authorization);
    if (caller instanceof Promise) {
      caller.then((c) => serve(req, res, m, started, cache, c), () => next(req, res)).catch((e: unknown) => failed(req, res, e));
    } else {
      serve(req, res, m, started, cache, caller);
    }
  };

  return (req, res) => {
    const started = performance.now();
    const method = req.method;
    const m = method === "GET" || method === "HEAD" ? URL_SHAPE.exec(req.url as string) : null;
    if (m === null) return next(req, res);
    const host = req.headers.host;
    if (host === undefined || host === "" || (allowedHosts.length > 0 && !allowedHosts.includes(host)) || hasBody(req)) return next(req, res);
    // Memoised cache rows and the revocation list expire every few seconds; reloading them here
    // keeps those requests on this path instead of sending one in every refresh to the framework.
    const cache = ctx.caches.peek(m[2] as string);
    if (cache === undefined) {
      ctx.caches.get(m[2] as string).then((c) => withCache(req, res, m, started, c), () => next(req, res)).catch((e: unknown) => failed(req, res, e));
    } else {
      withCache(req, res, m, started, cache);
    }
  };
}
