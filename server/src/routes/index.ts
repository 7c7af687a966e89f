/** The route table. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { PUSH_PREFIX } from "./push-url.ts";
import { registerNixCacheInfo } from "./nix-cache-info.ts";
import { registerNarInfoGet } from "./narinfo-get.ts";
import { registerNarInfoPut } from "./narinfo-put.ts";
import { registerNarGet } from "./nar-get.ts";
import { registerNarPut } from "./nar-put.ts";
import { registerNarListingGet } from "./nar-listing-get.ts";
import { registerBuildLogGet } from "./build-log-get.ts";
import { registerBuildLogPut } from "./build-log-put.ts";
import { registerRealisationGet } from "./realisation-get.ts";
import { registerRealisationPut } from "./realisation-put.ts";
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
import { registerCachixCacheGet } from "./cachix-cache-get.ts";
import { registerCachixNarinfoQuery } from "./cachix-narinfo-query.ts";
import { registerCachixNarinfoHead } from "./cachix-narinfo-head.ts";
import { registerCachixMultipartCreate } from "./cachix-multipart-create.ts";
import { registerCachixMultipartPart } from "./cachix-multipart-part.ts";
import { registerCachixMultipartComplete } from "./cachix-multipart-complete.ts";
import { registerCachixMultipartAbort } from "./cachix-multipart-abort.ts";
import { registerCachixPartPut } from "./cachix-part-put.ts";
import { registerCachixKey } from "./cachix-key.ts";
import { registerDeployActivate } from "./deploy-activate.ts";
import { registerDeployList } from "./deploy-list.ts";
import { registerDeployStatus } from "./deploy-status.ts";
import { registerDeployHistory } from "./deploy-history.ts";
import { registerDeployLogs } from "./deploy-logs.ts";
import { registerDeployPause } from "./deploy-pause.ts";
import { registerDeployResume } from "./deploy-resume.ts";
import { registerDeployRollback } from "./deploy-rollback.ts";
import { registerAgentDesired } from "./agent-desired.ts";
import { registerAgentReport } from "./agent-report.ts";
import { registerAgentSlot } from "./agent-slot.ts";
import { registerAgentMigration } from "./agent-migration.ts";
import { deployWatch } from "../deploy/watch.ts";

export function registerRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get("/", async (_req, reply) =>
    reply.type("text/plain").send("larder: a Nix binary cache. Substituter URLs are http(s)://<this host>/<cache>; push with nix copy --to http(s)://<this host>/_push/<cache>.\n"),
  );
  registerHealth(app, ctx);
  registerMetrics(app, ctx);
  registerCacheConfigGet(app, ctx);
  registerCacheCreate(app, ctx);
  registerCacheConfigure(app, ctx);
  registerCacheDestroy(app, ctx);
  registerPins(app, ctx);
  // Nix's binary-cache protocol, at the cache's URL and again under PUSH_PREFIX: Nix files every
  // narinfo it uploads in its local disk cache under the URL it pushed to and trusts it for 30
  // days (narinfo-cache-positive-ttl), so pulling from the URL pushed to would use that unsigned
  // copy naming the client's NAR file, not ours. Pushing to /_push/<cache> keeps those copies
  // under a URL nobody pulls from.
  for (const prefix of ["", PUSH_PREFIX]) {
    registerNixCacheInfo(app, ctx, prefix);
    registerNarInfoGet(app, ctx, prefix);
    registerNarInfoPut(app, ctx, prefix);
    registerNarGet(app, ctx, prefix);
    registerNarPut(app, ctx, prefix);
    registerNarListingGet(app, ctx, prefix);
    registerBuildLogGet(app, ctx, prefix);
    registerBuildLogPut(app, ctx, prefix);
    registerRealisationGet(app, ctx, prefix);
    registerRealisationPut(app, ctx, prefix);
  }
  registerGetMissingPaths(app, ctx);
  registerUploadPath(app, ctx);
  registerPathDelete(app, ctx);
  registerTokenRevoke(app, ctx);
  // The Cachix client's API (docs/CACHIX.md).
  registerCachixCacheGet(app, ctx);
  registerCachixNarinfoQuery(app, ctx);
  registerCachixNarinfoHead(app, ctx);
  registerCachixMultipartCreate(app, ctx);
  registerCachixMultipartPart(app, ctx);
  registerCachixMultipartComplete(app, ctx);
  registerCachixMultipartAbort(app, ctx);
  registerCachixPartPut(app, ctx);
  registerCachixKey(app, ctx);
  // larder deploy (api/deploy-types.ts): operators, then agents.
  registerDeployActivate(app, ctx);
  registerDeployList(app, ctx);
  registerDeployStatus(app, ctx);
  registerDeployHistory(app, ctx);
  registerDeployLogs(app, ctx);
  registerDeployPause(app, ctx);
  registerDeployResume(app, ctx);
  registerDeployRollback(app, ctx);
  registerAgentDesired(app, ctx);
  registerAgentReport(app, ctx);
  registerAgentSlot(app, ctx);
  registerAgentMigration(app, ctx);
  const watch = deployWatch(ctx);
  app.addHook("onClose", (_app, done) => {
    watch.close();
    done();
  });
  ctx.metrics.agentStates ??= async () => {
    const rows = await ctx.db.kysely.selectFrom("deploy_agent").select(["state", (eb) => eb.fn.countAll<number>().as("n")]).groupBy("state").execute();
    return new Map(rows.map((r) => [r.state, Number(r.n)]));
  };
}
