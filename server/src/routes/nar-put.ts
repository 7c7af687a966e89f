/**
 * PUT /{cache}/nar/<filehash>.nar[.ext] — the NAR half of `nix copy --to http://…`. The NAR is
 * ingested and stored, then staged for this cache: it becomes visible only when a narinfo that
 * matches it arrives (narinfo-put.ts). A body whose bytes do not hash to the name in the URL,
 * truncated ones included, is refused and leaves nothing behind.
 */
import { storesOnLocalDisk } from "../storage/file.ts";
import type { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { encodeNixBase32 } from "../nix/base32.ts";
import { isUploadCompression } from "../ingest/codecs.ts";
import { discardIngested, ingest, maxUploadFor } from "../ingest/pipeline.ts";
import { commitNar } from "../ingest/commit.ts";
import { refuseDeclaredLength } from "../http/body.ts";
import { stageNar } from "../db/nars.ts";
import { narFileName } from "./paths.ts";
import { peekHead } from "../http/peek.ts";
import { compressionFromMagic } from "../nix/compression.ts";

export function registerNarPut(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.put<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/nar/:file`, { config: { authorizesBeforeBody: true } }, async (req, reply) => {
    const name = narFileName(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "push");
    if (!isUploadCompression(name.compression)) {
      throw new ServerError("InvalidCompressionType", `Uploads in ${name.compression} are not supported; use compression=zstd, xz, br or none.`);
    }
    const maxUploadBytes = maxUploadFor(ctx.config.maxNarSize);
    refuseDeclaredLength(req.raw, maxUploadBytes, "upload");
    ctx.metrics.uploadsInFlight.inc();
    try {
      // Nix 2.8 names gzip NARs plain ".nar", like uncompressed ones: tell them apart by their bytes.
      let input = name.compression;
      let body: Readable = req.raw;
      if (input === "none") {
        const peeked = await peekHead(req.raw, 16);
        body = peeked.body;
        if (compressionFromMagic(peeked.head) === "gzip") input = "gzip";
      }
      const ingested = await ingest({
        body,
        input,
        stored: ctx.config.compression,
        spoolDir: ctx.spoolDir,
        syncBehind: storesOnLocalDisk(ctx.pool.backends),
        maxUploadBytes,
        maxNarBytes: ctx.config.maxNarSize,
      });
      const received = encodeNixBase32(ingested.upload.sha256);
      if (received !== name.fileHash) {
        await discardIngested(ingested);
        throw badRequest(
          `the body's SHA-256 is ${received} but the URL names ${name.fileHash} (${ingested.upload.size} bytes received; a truncated upload?)`,
        );
      }
      await commitNar(ctx.db, ctx.pool, ingested, {
        cacheId: cache.id,
        cacheName: cache.name,
        link: (tx, nar) => stageNar(tx, cache.id, name.fileHash, ingested.upload.size, nar.id),
      });
      ctx.metrics.bytesIngested.inc({ protocol: "nix" }, ingested.nar.size);
      return reply.code(200).type("text/plain").send("");
    } finally {
      ctx.metrics.uploadsInFlight.dec();
    }
  });
}
