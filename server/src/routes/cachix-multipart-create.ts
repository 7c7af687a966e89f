/** POST /api/v1/cache/{name}/multipart-nar?compression=xz|zst — starts a Cachix NAR upload. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { createUpload } from "../cachix/uploads.ts";
import { CACHIX_COMPRESSIONS, type CreateMultipartUploadResponse } from "../cachix/types.ts";

export function registerCachixMultipartCreate(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string }; Querystring: { compression?: unknown } }>("/api/v1/cache/:name/multipart-nar", async (req, reply) => {
    const { cache, caller } = await requireCache(ctx, req, req.params.name, "push");
    const compression = req.query.compression ?? "zst";
    if (typeof compression !== "string" || !CACHIX_COMPRESSIONS.has(compression as "xz")) {
      throw new ServerError("InvalidCompressionType", `compression=${String(compression).slice(0, 20)} is not supported; use xz or zst.`);
    }
    const upload = await createUpload(ctx.db, cache.id, compression, caller.claims?.sub ?? null);
    const body: CreateMultipartUploadResponse = { narId: upload.nar_uuid, uploadId: upload.upload_id };
    return reply.send(body);
  });
}
