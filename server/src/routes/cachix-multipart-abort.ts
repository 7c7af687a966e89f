/**
 * POST /api/v1/cache/{name}/multipart-nar/{narId}/abort?uploadId=… — drops an upload and its
 * parts (the client sends it when streaming a path failed). Aborting a completed upload changes
 * nothing: its path is committed.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findUpload } from "../cachix/uploads.ts";
import { deleteParts } from "../cachix/complete.ts";

export function registerCachixMultipartAbort(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string; narId: string }; Querystring: { uploadId?: unknown } }>(
    "/api/v1/cache/:name/multipart-nar/:narId/abort",
    async (req, reply) => {
      const { cache } = await requireCache(ctx, req, req.params.name, "push");
      const upload = await findUpload(ctx.db, cache.id, req.params.narId, req.query.uploadId);
      if (upload.state === "completing") throw new ServerError("Conflict", `Multipart upload ${upload.nar_uuid} is being completed; it cannot be aborted now.`);
      if (upload.state === "open") {
        // The row first: once it is gone no part URL works and no completion can start.
        await ctx.db.kysely.deleteFrom("cachix_upload").where("id", "=", upload.id).where("state", "=", "open").execute();
        await deleteParts(ctx.storage, upload.nar_uuid, req.log);
      }
      return reply.code(200).send();
    },
  );
}
