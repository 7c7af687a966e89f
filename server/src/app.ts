/**
 * Builds the HTTP server from a ready context: hooks (host check, metrics), the error mapping,
 * and the route table. No environment, files or process state are read here.
 */
import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyError, type FastifyInstance } from "fastify";
import type { AppContext } from "./context.ts";
import { errorBody, ServerError, type ErrorKind } from "./errors.ts";
import { registerRoutes } from "./routes/index.ts";

export function buildApp(ctx: AppContext): FastifyInstance {
  // The pino instance's type is wider than Fastify's base logger; the app only uses the base.
  const app = Fastify({
    loggerInstance: ctx.log,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "reqId" }),
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    bodyLimit: 16 * 1024 * 1024,
    // Nix sends encoded-looking characters (":" "!" in realisations); keep params raw.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 512 },
    forceCloseConnections: true,
    keepAliveTimeout: 75_000,
    requestTimeout: 0,
  }) as unknown as FastifyInstance;

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

  app.addHook("onRequest", async (req) => {
    const host = req.headers.host;
    if (host === undefined || host === "") throw new ServerError("RequestError", "General request error: Missing Host header.");
    if (ctx.config.allowedHosts.length > 0 && !ctx.config.allowedHosts.includes(host)) {
      throw new ServerError("RequestError", "General request error: Bad Host.");
    }
  });

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    ctx.metrics.requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    ctx.metrics.latency.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    if (reply.statusCode >= 500 || (req.method !== "GET" && req.method !== "HEAD")) {
      req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "request");
    } else {
      req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, "request");
    }
  });

  app.setErrorHandler((err: FastifyError | ServerError | Error, req, reply) => {
    let kind: ErrorKind;
    let message: string;
    if (err instanceof ServerError) {
      kind = err.kind;
      message = err.message;
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
    void reply.code(body.code).header("content-type", "application/json; charset=utf-8").send(body);
  });

  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send(errorBody("NotFound", "The URL you requested was not found."));
  });

  registerRoutes(app, ctx);
  return app;
}
