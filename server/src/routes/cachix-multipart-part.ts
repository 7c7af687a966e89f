/**
 * POST /api/v1/cache/{name}/multipart-nar/{narId}?uploadId=…&partNumber=N — the URL the client
 * PUTs part N to, without credentials: a presigned S3 URL for the part's staging key, or, where
 * the storage cannot presign, larderd's own part URL carrying a signed capability (cachix-part-put.ts).
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { apiEndpoint } from "../http/endpoints.ts";
import { storageFailure } from "../ingest/failures.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { assertOpen, findUpload, MAX_PARTS, PART_URL_SECONDS, partKey, signPart, touchUpload } from "../cachix/uploads.ts";
import { signingData, type UploadPartResponse } from "../cachix/types.ts";
import { CACHIX_PART_PATH } from "./cachix-part-put.ts";

export function registerCachixMultipartPart(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string; narId: string }; Querystring: { uploadId?: unknown; partNumber?: unknown } }>(
    "/api/v1/cache/:name/multipart-nar/:narId",
    async (req, reply) => {
      const { cache } = await requireCache(ctx, req, req.params.name, "push");
      const upload = await findUpload(ctx.db, cache.id, req.params.narId, req.query.uploadId);
      assertOpen(upload);
      const n = typeof req.query.partNumber === "string" && /^\d{1,5}$/.test(req.query.partNumber) ? Number(req.query.partNumber) : NaN;
      if (!(n >= 1 && n <= MAX_PARTS)) throw badRequest(`partNumber must be 1 to ${MAX_PARTS}`);
      const parsed = signingData.safeParse(req.body);
      if (!parsed.success) throw badRequest(`invalid SigningData: ${describeZodError(parsed.error)}`);
      const md5 = parsed.data.contentMD5;
      await ctx.db.kysely
        .insertInto("cachix_part")
        .values({ upload_id: upload.id, part_number: n, content_md5: md5, size: null })
        .onConflict((oc) => oc.columns(["upload_id", "part_number"]).doUpdateSet({ content_md5: md5, size: null }))
        .execute();
      await touchUpload(ctx.db, upload.id);
      let uploadUrl: string;
      if (ctx.storage.presignPut) {
        uploadUrl = await ctx.storage.presignPut(partKey(upload.nar_uuid, n), PART_URL_SECONDS, md5).catch((e: unknown) => {
          throw storageFailure(e, "storage");
        });
      } else {
        const cap = signPart(upload, n, md5);
        const q = new URLSearchParams({ md5: cap.md5, expires: String(cap.expires), sig: cap.sig });
        uploadUrl = `${apiEndpoint(ctx.config, req)}${CACHIX_PART_PATH.slice(1)}/${upload.nar_uuid}/${n}?${q.toString()}`;
      }
      const body: UploadPartResponse = { uploadUrl };
      return reply.send(body);
    },
  );
}
