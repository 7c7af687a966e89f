/** The route table. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { registerNixCacheInfo } from "./nix-cache-info.ts";
import { registerNarInfoGet } from "./narinfo-get.ts";
import { registerNarInfoPut } from "./narinfo-put.ts";
import { registerNarGet } from "./nar-get.ts";
import { registerNarPut } from "./nar-put.ts";
import { registerCacheConfigGet } from "./cache-config-get.ts";
import { registerCacheCreate } from "./cache-create.ts";
import { registerCacheConfigure } from "./cache-configure.ts";
import { registerCacheDestroy } from "./cache-destroy.ts";
import { registerHealth } from "./health.ts";
import { registerMetrics } from "./metrics.ts";
import { registerPins } from "./pins.ts";
import { registerGetMissingPaths } from "./get-missing-paths.ts";
import { registerUploadPath } from "./upload-path.ts";
import { registerPathDelete } from "./path-delete.ts";
import { registerTokenRevoke } from "./token-revoke.ts";

export function registerRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get("/", async (_req, reply) =>
    reply.type("text/plain").send("larder: a Nix binary cache. Substituter URLs are http(s)://<this host>/<cache>.\n"),
  );
  registerHealth(app, ctx);
  registerMetrics(app, ctx);
  registerCacheConfigGet(app, ctx);
  registerCacheCreate(app, ctx);
  registerCacheConfigure(app, ctx);
  registerCacheDestroy(app, ctx);
  registerPins(app, ctx);
  registerNixCacheInfo(app, ctx);
  registerNarInfoGet(app, ctx);
  registerNarInfoPut(app, ctx);
  registerNarGet(app, ctx);
  registerNarPut(app, ctx);
  registerGetMissingPaths(app, ctx);
  registerUploadPath(app, ctx);
  registerPathDelete(app, ctx);
  registerTokenRevoke(app, ctx);
}
