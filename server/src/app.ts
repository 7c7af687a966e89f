/**
 * Builds the HTTP server from a ready context: hooks (host check, metrics), the error mapping,
 * and the route table. No environment, files or process state are read here.
 */
import { randomBytes } from "node:crypto";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type onResponseHookHandler } from "fastify";
import type { AppContext } from "./context.ts";
import { errorBody, ServerError, type ErrorKind } from "./errors.ts";
import { registerRoutes } from "./routes/index.ts";
import { DatabaseUnavailableError } from "./db/errors.ts";

// Request ids: a random prefix per process and a counter, unique across api-servers without
// a random UUID per request (the hot path's requests are tens of microseconds).
const ID_PREFIX = randomBytes(6).toString("base64url");
let requestCount = 0;

/** Counts and times every answer (and logs writes and failures); bound to its route's URL pattern. */
function responseRecorder(ctx: AppContext, route: string) {
  return (req: FastifyRequest, reply: FastifyReply): void => {
    const status = reply.statusCode;
    ctx.metrics.requests.inc({ route, method: req.method, status: String(status) });
    ctx.metrics.latency.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    if (status >= 500 || (req.method !== "GET" && req.method !== "HEAD")) {
      req.log.info({ method: req.method, url: req.url, status, ms: Math.round(reply.elapsedTime) }, "request");
    } else if (ctx.log.isLevelEnabled("debug")) {
      req.log.debug({ method: req.method, url: req.url, status, ms: Math.round(reply.elapsedTime) }, "request");
    }
  };
}

export function buildApp(ctx: AppContext): FastifyInstance {
  // The pino instance's type is wider than Fastify's base logger; the app only uses the base.
  const app = Fastify({
    loggerInstance: ctx.log,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "reqId" }),
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : `${ID_PREFIX}-${(++requestCount).toString(36)}`;
    },
    bodyLimit: 16 * 1024 * 1024,
    // Nix sends encoded-looking characters (":" "!" in realisations); keep params raw.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 512 },
    forceCloseConnections: true,
    keepAliveTimeout: 75_000,
    requestTimeout: 0,
  }) as unknown as FastifyInstance;

  app.decorateRequest("larderCaller", null);

  // Uploads are streamed by their handlers from request.raw; only JSON is parsed up front.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: 16 * 1024 * 1024 }, (_req, body, done) => {
    try {
      done(null, body === "" ? undefined : JSON.parse(body as string));
    } catch {
      done(new ServerError("RequestError", "General request error: the body is not valid JSON."), undefined);
    }
  });
  app.addContentTypeParser("*", (_req, _payload, done) => done(null, undefined));

  // Callback hooks, not async ones: an async hook costs a promise per request on every route.
  const allowedHosts = ctx.config.allowedHosts;
  app.addHook("onRequest", (req, _reply, done) => {
    const host = req.headers.host;
    if (host === undefined || host === "") return done(new ServerError("RequestError", "General request error: Missing Host header."));
    if (allowedHosts.length > 0 && !allowedHosts.includes(host)) return done(new ServerError("RequestError", "General request error: Bad Host."));
    done();
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
    let kind: ErrorKind;
    let message: string;
    if (err instanceof ServerError) {
      kind = err.kind;
      message = err.message;
      if (err instanceof DatabaseUnavailableError) ctx.metrics.backendErrors.inc({ backend: "database" });
    } else if ("statusCode" in err && typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
      kind = err.statusCode === 413 ? "PayloadTooLarge" : err.statusCode === 404 ? "NotFound" : "RequestError";
      message = `General request error: ${err.message}`;
    } else {
      kind = "InternalServerError";
      message = "";
      ctx.metrics.backendErrors.inc({ backend: /storage|s3|bucket|ENOSPC|EIO/i.test(String(err.message)) ? "storage" : "database" });
    }
    const body = errorBody(kind, message);
    if (body.code >= 500) req.log.error({ err }, "request failed");
    else if (kind === "Unauthorized" || kind === "AccessError") req.log.info({ reason: message, url: req.url }, "access denied");
    if (reply.sent) return;
    // An error answered before the body was read: discard the rest and do not reuse the
    // connection, so the next request on it is never parsed out of leftover body bytes.
    if (!req.raw.complete && !req.raw.destroyed) {
      req.raw.resume();
      reply.header("connection", "close");
    }
    if (req.is404) reply.raw.once("finish", () => recordUnmatched(req, reply));
    void reply.code(body.code).header("content-type", "application/json; charset=utf-8").send(body);
  });

  app.setNotFoundHandler((req, reply) => {
    reply.raw.once("finish", () => recordUnmatched(req, reply));
    void reply.code(404).send(errorBody("NotFound", "The URL you requested was not found."));
  });

  registerRoutes(app, ctx);
  return app;
}
