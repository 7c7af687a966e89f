/**
 * Builds the HTTP server from a ready context: hooks (host check, metrics), the error mapping,
 * and the route table. No environment, files or process state are read here.
 */
import { createServer, type ServerOptions } from "node:http";
import type { Logger } from "pino";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type onResponseHookHandler } from "fastify";
import type { AppContext } from "./context.ts";
import { errorBody, ServerError, type ErrorKind } from "./errors.ts";
import { StorageError, StorageNotFoundError, StorageRangeError } from "./storage/types.ts";
import { registerRoutes } from "./routes/index.ts";
import { DatabaseUnavailableError } from "./db/errors.ts";
import { HEALTH_PATHS } from "./routes/health.ts";
import { caller } from "./http/caller.ts";
import { unauthorized } from "./http/cache-access.ts";
import { bodyIdleTimeout, hasBody } from "./http/timeouts.ts";
import { settleUnreadBody } from "./http/unread-body.ts";
import { clientGone } from "./ingest/failures.ts";
import { requestId } from "./http/request-id.ts";
import { recordResponse } from "./http/record.ts";
import { cacheHostRewriter, cacheOfHost } from "./cachix/uri.ts";
import { withFastReads, type RequestHandler } from "./http/fast-reads.ts";

/** Counts and times every answer (and logs writes and failures); bound to its route's URL pattern. */
function responseRecorder(ctx: AppContext, route: string) {
  return (req: FastifyRequest, reply: FastifyReply): void => {
    recordResponse(ctx, route, req.method, req.url, reply.statusCode, reply.elapsedTime, () => req.log as Logger);
  };
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The handler checks the caller's permission before it reads a byte of the body. */
    authorizesBeforeBody?: boolean;
  }
}

export interface AppOptions {
  /** Answer plain narinfo and nix-cache-info reads before Fastify (http/fast-reads.ts); default on. */
  fastReads?: boolean;
}

export function buildApp(ctx: AppContext, opts: AppOptions = {}): FastifyInstance {
  const fastReads = opts.fastReads ?? true;
  // The pino instance's type is wider than Fastify's base logger; the app only uses the base.
  const app = Fastify({
    loggerInstance: ctx.log,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "reqId" }),
    genReqId: requestId,
    bodyLimit: 16 * 1024 * 1024,
    // Nix sends encoded-looking characters (":" "!" in realisations); keep params raw.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 512 },
    forceCloseConnections: true,
    keepAliveTimeout: ctx.config.timeouts.keepAliveMs,
    // No limit on a whole request: a big NAR upload may take hours. Slow or stalled clients are
    // cut off by the header timeout and the body idle timeout (bodyIdleTimeout below) instead.
    requestTimeout: 0,
    // headersTimeout is enforced by a sweep every connectionsCheckingInterval.
    http: { headersTimeout: ctx.config.timeouts.headersMs, connectionsCheckingInterval: Math.min(5000, ctx.config.timeouts.headersMs || 5000) },
    ...(ctx.config.cachixCacheDomain !== undefined && { rewriteUrl: cacheHostRewriter(ctx.config.cachixCacheDomain) }),
    // The server Fastify would make (its lib/server.js, HTTP/1), with the fast path in front.
    ...(fastReads && {
      serverFactory: (handler: RequestHandler, o: { http: ServerOptions; keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number }) => {
        const server = createServer(o.http, withFastReads(ctx, handler));
        server.keepAliveTimeout = o.keepAliveTimeout;
        server.requestTimeout = o.requestTimeout;
        server.setTimeout(o.connectionTimeout);
        return server;
      },
    }),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  app.decorateRequest("larderCaller", null);

  // Uploads are streamed by their handlers from request.raw; only JSON is parsed up front.
  app.removeAllContentTypeParsers();
  // No bodyLimit here: it would override the routes' own (get-missing-paths).
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, body === "" ? undefined : JSON.parse(body as string));
    } catch {
      done(new ServerError("RequestError", "General request error: the body is not valid JSON."), undefined);
    }
  });
  app.addContentTypeParser("*", (_req, _payload, done) => done(null, undefined));

  // Callback hooks, not async ones: an async hook costs a promise per request on every route.
  const allowedHosts = ctx.config.allowedHosts;
  const cacheDomain = ctx.config.cachixCacheDomain;
  const isCacheHost = (host: string) => cacheDomain !== undefined && cacheOfHost(host, cacheDomain) !== undefined;
  app.addHook("onRequest", (req, _reply, done) => {
    const host = req.headers.host;
    if (host !== undefined && host !== "" && (allowedHosts.length === 0 || allowedHosts.includes(host) || isCacheHost(host))) return done();
    // A load balancer's health check names the target by its address; health says nothing private.
    const q = req.url.indexOf("?");
    if (HEALTH_PATHS.has(q < 0 ? req.url : req.url.slice(0, q))) return done();
    if (host === undefined || host === "") return done(new ServerError("RequestError", "General request error: Missing Host header."));
    done(new ServerError("RequestError", "General request error: Bad Host."));
  });

  // Nobody may make the server read a body before showing a valid token: every route that takes a
  // body writes something, and anonymous callers can write nothing. Checked before parsing, so an
  // anonymous JSON body is never buffered and an anonymous attic preamble never read. Routes that
  // check the caller's permission on the cache before reading (`authorizesBeforeBody`) answer
  // for themselves, with attic's and Nix's statuses.
  app.addHook("preParsing", (req, _reply, payload, done) => {
    if (!hasBody(req.raw) || req.routeOptions.config.authorizesBeforeBody === true) return done(null, payload);
    caller(ctx, req).then(
      (c) => (c.claims === undefined ? done(unauthorized(c)) : done(null, payload)),
      (e: unknown) => done(e as Error),
    );
  });
  app.addHook("onRequest", (req, reply, done) => {
    if (hasBody(req.raw)) bodyIdleTimeout(req.raw, reply.raw, ctx.config.timeouts.bodyIdleMs);
    done();
  });
  // A body left unread must not leave its connection stuck (http/unread-body.ts).
  app.addHook("onSend", (req, reply, payload, done) => {
    if (!req.raw.complete && settleUnreadBody(req.raw, reply.raw)) reply.header("connection", "close");
    done(null, payload);
  });

  // Each route gets its own recorder with its URL pattern bound, instead of a global hook asking
  // Fastify for the route per request (req.routeOptions builds a fresh object on every read).
  // Requests no route matched are recorded by the not-found and error handlers.
  const recordUnmatched = responseRecorder(ctx, "unmatched");
  app.addHook("onRoute", (route) => {
    const record = responseRecorder(ctx, route.url);
    const hook: onResponseHookHandler = (req, reply, done) => {
      record(req, reply);
      done();
    };
    const existing = route.onResponse;
    route.onResponse = existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook];
  });

  app.setErrorHandler((err: FastifyError | ServerError | Error, req, reply) => {
    // Whatever a read of the body failed with once the client hung up (ECONNRESET "aborted", a
    // body that closed early) is the client's leaving, not a failure of ours.
    if (!(err instanceof ServerError) && !req.raw.complete && (req.raw.destroyed || req.raw.socket?.destroyed === true)) err = clientGone();
    let kind: ErrorKind;
    let message: string;
    if (err instanceof ServerError) {
      kind = err.kind;
      message = err.message;
      if (err instanceof DatabaseUnavailableError) ctx.metrics.backendErrors.inc({ backend: "database" });
    } else if ("statusCode" in err && typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
      kind = err.statusCode === 413 ? "PayloadTooLarge" : err.statusCode === 404 ? "NotFound" : "RequestError";
      message =
        err.statusCode === 413
          ? `General request error: the request body is larger than this endpoint's limit of ${req.routeOptions.bodyLimit} bytes.`
          : `General request error: ${err.message}`;
    } else if ((err instanceof StorageError && !(err instanceof StorageRangeError)) || err instanceof StorageNotFoundError) {
      // A storage backend that cannot be reached or read (an unmounted disk looks like missing
      // files): unavailable for now, retried by clients.
      kind = "ServiceUnavailable";
      message = "";
      ctx.metrics.backendErrors.inc({ backend: "storage" });
    } else {
      kind = "InternalServerError";
      message = "";
      ctx.metrics.backendErrors.inc({ backend: /storage|s3|bucket|ENOSPC|EIO/i.test(String(err.message)) ? "storage" : "database" });
    }
    const body = errorBody(kind, message);
    if (err instanceof ServerError && err.backend !== undefined) ctx.metrics.backendErrors.inc({ backend: err.backend });
    if (err instanceof ServerError && err.clientGone) req.log.info({ url: req.url }, "client closed the connection during the request");
    else if (body.code >= 500) req.log.error({ err: err instanceof ServerError && err.cause !== undefined ? err.cause : err, reason: err.message }, "request failed");
    else if (kind === "Unauthorized" || kind === "AccessError") req.log.info({ reason: message, url: req.url }, "access denied");
    if (reply.sent) return;
    if (req.is404) reply.raw.once("finish", () => recordUnmatched(req, reply));
    const full = err instanceof ServerError && err.details !== undefined && body.code < 500 ? { ...err.details, ...body } : body;
    void reply.code(body.code).header("content-type", "application/json; charset=utf-8").send(full);
  });

  app.setNotFoundHandler((req, reply) => {
    reply.raw.once("finish", () => recordUnmatched(req, reply));
    void reply.code(404).send(errorBody("NotFound", "The URL you requested was not found."));
  });

  registerRoutes(app, ctx);
  return app;
}
