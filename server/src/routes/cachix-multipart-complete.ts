/**
 * POST /api/v1/cache/{name}/multipart-nar/{narId}/complete?uploadId=… — assembles, verifies and
 * commits the upload (cachix/complete.ts). A retry of a completion that succeeded answers 200
 * again and changes nothing; a different path for the same upload is a conflict.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { findUpload } from "../cachix/uploads.ts";
import { completedMultipartUpload } from "../cachix/types.ts";
import { completeUpload } from "../cachix/complete.ts";

export function registerCachixMultipartComplete(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string; narId: string }; Querystring: { uploadId?: unknown } }>(
    "/api/v1/cache/:name/multipart-nar/:narId/complete",
    async (req, reply) => {
      const { cache, caller } = await requireCache(ctx, req, req.params.name, "push");
      const upload = await findUpload(ctx.db, cache.id, req.params.narId, req.query.uploadId);
      const parsed = completedMultipartUpload.safeParse(req.body);
      if (!parsed.success) throw badRequest(`invalid CompletedMultipartUpload: ${describeZodError(parsed.error)}`);
      if (upload.state === "done") {
        if (upload.completed_store_hash === parsed.data.narInfoCreate.cStoreHash) return reply.code(200).send();
        throw new ServerError("Conflict", `Multipart upload ${upload.nar_uuid} already completed as another store path.`);
      }
      if (upload.state !== "open") throw new ServerError("Conflict", `Multipart upload ${upload.nar_uuid} is already being completed.`);
      await completeUpload(ctx, cache, upload, parsed.data, caller.claims?.sub ?? null, req.log);
      return reply.code(200).send();
    },
  );
}
