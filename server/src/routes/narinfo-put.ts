/**
 * PUT /{cache}/<hash>.narinfo — commits a path pushed by Nix: the NAR it names must have been
 * uploaded to this cache (staged, pushed before under that name, or the one we serve, when
 * `nix store sign` re-PUTs our narinfo with an extra signature) and must match the narinfo's
 * NarHash and NarSize. Only then does the path become visible.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { readSmallBody } from "../http/body.ts";
import { parseNarInfo, type NarInfo } from "../nix/narinfo.ts";
import { NarInfoError, NixFormatError } from "../nix/errors.ts";
import { formatNix32, formatHex } from "../nix/hash.ts";
import { parseStorePath } from "../nix/store-path.ts";
import { findServedNar, findStagedNar, type NarRow } from "../db/nars.ts";
import { findObject, lockCache, missingReferences, upsertObject } from "../db/objects.ts";
import { signatureFor } from "../narinfo-view.ts";
import { narFileName, narInfoHash } from "./paths.ts";

async function findUploadedNar(ctx: AppContext, cacheId: number, fileHash: string): Promise<{ nar: NarRow; uploadSize?: number; stagedId?: number } | undefined> {
  const staged = await findStagedNar(ctx.db, cacheId, fileHash);
  if (staged) {
    const { staged_id, upload_file_size, ...nar } = staged;
    return { nar, uploadSize: upload_file_size, stagedId: staged_id };
  }
  const pushed = await ctx.db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .selectAll("nar")
    .where("object.cache_id", "=", cacheId)
    .where("object.upload_file_hash", "=", fileHash)
    .executeTakeFirst();
  if (pushed) return { nar: pushed };
  const served = await findServedNar(ctx.db, cacheId, fileHash);
  return served ? { nar: served } : undefined;
}

function checkAgainstNar(info: NarInfo, nar: NarRow, fileHash: string, uploadSize: number | undefined): void {
  if (formatHex(info.narHash) !== `sha256:${nar.nar_hash}`) {
    throw badRequest(`NarHash ${formatNix32(info.narHash)} does not match the uploaded NAR (sha256 ${nar.nar_hash})`);
  }
  if (info.narSize !== nar.nar_size) {
    throw badRequest(`NarSize ${info.narSize} does not match the uploaded NAR (${nar.nar_size} bytes)`);
  }
  if (info.fileHash && formatNix32(info.fileHash) !== `sha256:${fileHash}`) {
    throw badRequest(`FileHash ${formatNix32(info.fileHash)} does not match the uploaded file (sha256:${fileHash})`);
  }
  const expectedFileSize = uploadSize ?? (fileHash === nar.file_hash ? nar.file_size : undefined);
  if (info.fileSize !== undefined && expectedFileSize !== undefined && info.fileSize !== expectedFileSize) {
    throw badRequest(`FileSize ${info.fileSize} does not match the uploaded file (${expectedFileSize} bytes)`);
  }
}

export function registerNarInfoPut(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.put<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/:file`, { config: { authorizesBeforeBody: true } }, async (req, reply) => {
    const hash = narInfoHash(req.params.file);
    const { cache, caller } = await requireCache(ctx, req, req.params.cache, "push");
    const text = (await readSmallBody(req.raw, ctx.config.maxNarInfoSize, "narinfo")).toString("utf8");
    let info: NarInfo;
    try {
      info = parseNarInfo(text);
    } catch (e) {
      if (e instanceof NarInfoError || e instanceof NixFormatError) throw badRequest(`invalid narinfo: ${e.message}`);
      throw e;
    }
    let storePathHash: string;
    try {
      storePathHash = parseStorePath(info.storePath, cache.store_dir).hash;
    } catch (e) {
      throw badRequest(`invalid narinfo: StorePath: ${(e as Error).message}`);
    }
    if (storePathHash !== hash) throw badRequest(`StorePath ${info.storePath} does not belong to ${hash}.narinfo`);
    const urlName = info.url.startsWith("nar/") ? info.url.slice(4) : undefined;
    if (urlName === undefined) throw badRequest(`URL "${info.url}" does not name a NAR under nar/`);
    const { fileHash } = narFileName(urlName);
    const found = await findUploadedNar(ctx, cache.id, fileHash);
    if (!found) throw badRequest(`the NAR ${info.url} has not been uploaded to cache "${cache.name}"; PUT it before its narinfo`);
    checkAgainstNar(info, found.nar, fileHash, found.uploadSize);

    const next = {
      cacheId: cache.id,
      narId: found.nar.id,
      storePathHash,
      storePath: info.storePath,
      references: info.references,
      deriver: info.deriver ?? null,
      ca: info.ca ?? null,
      system: info.system ?? null,
      sigs: info.sigs,
      uploadFileHash: fileHash === found.nar.file_hash && found.stagedId === undefined ? null : fileHash,
      createdBy: caller.claims?.sub ?? null,
    };
    const existing = await findObject(ctx.db, cache.id, storePathHash);
    const unchanged =
      existing !== undefined &&
      existing.nar.id === next.narId &&
      existing.object.refs === JSON.stringify(next.references) &&
      existing.object.deriver === next.deriver &&
      existing.object.ca === next.ca &&
      existing.object.system === next.system &&
      new Set(JSON.parse(existing.object.sigs) as string[]).isSupersetOf(new Set(next.sigs));
    if (!unchanged) {
      if (existing) next.sigs = [...new Set([...(JSON.parse(existing.object.sigs) as string[]), ...next.sigs])];
      if (existing?.object.upload_file_hash && next.uploadFileHash === null) next.uploadFileHash = existing.object.upload_file_hash;
      // Made before the transaction: the signing is CPU work the write lock need not wait for.
      const signature = signatureFor(cache, info.storePath, info.narHash, info.narSize, info.references);
      await ctx.db.kysely.transaction().execute(async (trx) => {
        await lockCache(trx, ctx.db, cache.id, "shared");
        // Nix uploads references before their referrers; one missing now was collected meanwhile,
        // and committing would serve a closure Nix cannot install.
        const missing = await missingReferences(trx, cache.id, storePathHash, next.references);
        if (missing.length > 0) {
          throw badRequest(`references not in cache "${cache.name}": ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""}; push them first`);
        }
        const tx = { ...ctx.db, kysely: trx };
        await upsertObject(tx, { ...next, signature });
        if (found.stagedId !== undefined) await trx.deleteFrom("staged_nar").where("id", "=", found.stagedId).execute();
      });
    } else if (found.stagedId !== undefined) {
      await ctx.db.kysely.deleteFrom("staged_nar").where("id", "=", found.stagedId).execute();
    }
    ctx.narInfos.invalidate(cache.id, storePathHash);
    ctx.bucketLayout?.pathVisible(cache, storePathHash);
    return reply.code(200).type("text/plain").send("");
  });
}
