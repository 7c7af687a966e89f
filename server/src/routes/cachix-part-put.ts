/**
 * PUT /_api/cachix/part/{narId}/{partNumber}?md5=…&expires=…&sig=… — one part of a Cachix
 * upload, where the storage cannot take it directly (local disk). The client sends no
 * Authorization header here: the URL's capability (cachix/uploads.ts) is the credential, for this
 * part of this open upload with the MD5 announced for it. The body streams into storage and is
 * refused, leaving nothing, when it is too large or does not hash to that MD5.
 */
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { refuseDeclaredLength } from "../http/body.ts";
import { clientGone, storageFailure } from "../ingest/failures.ts";
import { maxUploadFor } from "../ingest/pipeline.ts";
import { assertOpen, checkPart, isNarUuid, MAX_PART_BYTES, MAX_PARTS, partKey, touchUpload } from "../cachix/uploads.ts";

export const CACHIX_PART_PATH = "/_api/cachix/part";

class PartTap extends Transform {
  readonly md5 = createHash("md5");
  size = 0;
  readonly limit: number;
  readonly expectedMd5: string;
  constructor(limit: number, expectedMd5: string) {
    super({ highWaterMark: 1 << 20 });
    this.limit = limit;
    this.expectedMd5 = expectedMd5;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return cb(new ServerError("PayloadTooLarge", `The part is larger than the limit of ${this.limit} bytes.`));
    this.md5.update(chunk);
    cb(null, chunk);
  }
  // Failing here, before the stream ends, keeps storage from committing a part with the wrong bytes.
  override _flush(cb: TransformCallback): void {
    const got = this.md5.digest("base64");
    if (got !== this.expectedMd5) return cb(badRequest(`the part's MD5 is ${got}, not the ${this.expectedMd5} its URL was issued for`));
    cb();
  }
}

export function registerCachixPartPut(app: FastifyInstance, ctx: AppContext): void {
  app.put<{ Params: { narId: string; part: string }; Querystring: Record<string, unknown> }>(
    `${CACHIX_PART_PATH}/:narId/:part`,
    { config: { authorizesBeforeBody: true } },
    async (req, reply) => {
      const { narId } = req.params;
      const n = /^\d{1,5}$/.test(req.params.part) ? Number(req.params.part) : NaN;
      if (!isNarUuid(narId) || !(n >= 1 && n <= MAX_PARTS)) throw new ServerError("NotFound");
      const upload = await ctx.db.kysely.selectFrom("cachix_upload").selectAll().where("nar_uuid", "=", narId).executeTakeFirst();
      // The same answer for a missing upload as for a forged URL: the URL is the only credential.
      if (!upload) throw new ServerError("AccessError", "Access error: the part URL's signature does not match this upload and part; ask for a new one.");
      const cap = checkPart(upload, n, req.query);
      assertOpen(upload);
      const limit = Math.min(MAX_PART_BYTES, maxUploadFor(ctx.config.maxNarSize));
      refuseDeclaredLength(req.raw, limit, "part");
      const sent = req.headers["content-md5"];
      if (sent !== undefined && sent !== cap.md5) throw badRequest(`Content-MD5 ${String(sent).slice(0, 40)} is not the ${cap.md5} this part URL was issued for`);
      const tap = new PartTap(limit, cap.md5);
      // Not pipeline(): a failed part must not destroy the request, whose connection still carries our answer.
      req.raw.on("error", (e) => tap.destroy(e));
      req.raw.on("close", () => {
        if (!req.raw.readableEnded) tap.destroy(clientGone());
      });
      req.raw.pipe(tap);
      try {
        await ctx.storage.put(partKey(narId, n), tap);
      } catch (e) {
        if (e instanceof ServerError) throw e;
        throw storageFailure(e, "storage");
      }
      await ctx.db.kysely
        .updateTable("cachix_part")
        .set({ size: tap.size })
        .where("upload_id", "=", upload.id)
        .where("part_number", "=", n)
        .where("content_md5", "=", cap.md5)
        .execute();
      await touchUpload(ctx.db, upload.id);
      return reply
        .code(200)
        .header("etag", `"${Buffer.from(cap.md5, "base64").toString("hex")}"`)
        .send();
    },
  );
}
