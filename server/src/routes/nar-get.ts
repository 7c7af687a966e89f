/**
 * GET/HEAD /{cache}/nar/<filehash>.nar.<ext> — streams the stored bytes as they are (never
 * recompressed), with Content-Length and single-range support; on S3, optionally a redirect to a
 * short-lived presigned URL. Only NARs of this cache's own objects are found here. attic's form,
 * /{cache}/nar/<storePathHash>.nar, names the NAR of that path in this cache and is served alike,
 * so narinfos Nix cached from attic before a migration keep working.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { PRESIGN_SECONDS } from "../config/load.ts";
import { requireCache } from "../http/cache-access.ts";
import { cacheHasUploadFile, findServedNar } from "../db/nars.ts";
import { findObject } from "../db/objects.ts";
import { atticNarPath, narFileName } from "./paths.ts";
import { sendFileSpan } from "../http/send-file.ts";
import { settleUnreadBody } from "../http/unread-body.ts";


/** Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; undefined means "whole file". */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | "unsatisfiable" {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

export function registerNarGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/nar/:file`, async (req, reply) => {
    const storePathHash = atticNarPath(req.params.file);
    const fileHash = storePathHash === undefined ? narFileName(req.params.file).fileHash : undefined;
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const nar =
      fileHash !== undefined ? await findServedNar(ctx.db, cache.id, fileHash) : (await findObject(ctx.db, cache.id, storePathHash as string))?.nar;
    if (!nar) {
      if (fileHash === undefined) throw new ServerError("NoSuchObject");
      // Nix's push asks with HEAD under its own file name whether to upload; a NAR staged or
      // pushed under that name earlier means "have it" (for this cache's uploads only).
      if (req.method === "HEAD" && (await cacheHasUploadFile(ctx.db, cache.id, fileHash))) {
        return reply.type("application/x-nix-nar").send();
      }
      throw new ServerError("NoSuchObject");
    }
    reply.header("accept-ranges", "bytes").type("application/x-nix-nar");
    const backend = ctx.pool.get(nar.backend);
    if (backend.config.accelRedirectPrefix !== undefined && req.method === "GET") {
      // nginx replaces this empty answer with the file (ranges included) by sendfile; Node has no
      // sendfile and streams NARs at a fraction of nginx's rate (docs/PERFORMANCE.md).
      ctx.accessTracker.touchNar(cache.id, nar.id);
      return reply.header("x-accel-redirect", `${backend.config.accelRedirectPrefix}${nar.storage_key}`).send("");
    }
    if (backend.config.presignDownloads && req.method === "GET" && req.headers.range === undefined) {
      const url = await backend.storage.presignGet(nar.storage_key, PRESIGN_SECONDS);
      if (url !== null) {
        ctx.accessTracker.touchNar(cache.id, nar.id);
        return reply.redirect(url, 307);
      }
    }
    const range = parseRange(req.headers.range, nar.file_size);
    if (range === "unsatisfiable") {
      return reply.code(416).header("content-range", `bytes */${nar.file_size}`).send("");
    }
    if (range) {
      reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${nar.file_size}`);
      reply.header("content-length", range.end - range.start + 1);
    } else {
      reply.header("content-length", nar.file_size);
    }
    if (req.method === "HEAD") {
      // Fastify rewrites Content-Length to the (empty) payload's; a HEAD must announce the file's.
      reply.hijack();
      reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
      reply.raw.end();
      return reply;
    }
    ctx.accessTracker.touchNar(cache.id, nar.id);
    if (backend.storage.openFile !== undefined) {
      const file = await backend.storage.openFile(nar.storage_key, range);
      ctx.metrics.bytesServed.inc(range ? range.end - range.start + 1 : nar.file_size);
      // What the onSend hook does for replies Fastify sends (app.ts); a hijacked reply skips it.
      if (!req.raw.complete && settleUnreadBody(req.raw, reply.raw)) reply.header("connection", "close");
      reply.hijack();
      reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
      sendFileSpan(reply.raw, file.handle, file.start, file.end)
        .catch((e: unknown) => {
          if (!reply.raw.destroyed) req.log.warn({ err: e, key: nar.storage_key }, "NAR download cut off");
          reply.raw.destroy();
        })
        .finally(() => void file.handle.close().catch(() => undefined));
      return reply;
    }
    const body = await backend.storage.get(nar.storage_key, range);
    ctx.metrics.bytesServed.inc(range ? range.end - range.start + 1 : nar.file_size);
    return reply.send(body);
  });
}
