/**
 * Completing a Cachix multipart upload: the parts, in order, are streamed as one upload through
 * the ingest pipeline every push protocol shares (decompress, hash, validate the NAR, recompress,
 * store, dedup by NarHash), checked against the client's NarInfoCreate, and committed; the path
 * becomes visible then, or once its references have arrived (pending.ts). Nothing of it is
 * visible before every check passed.
 */
import { storesOnLocalDisk } from "../storage/file.ts";
import { Readable } from "node:stream";
import type { FastifyBaseLogger as Logger } from "fastify";
import type { AppContext } from "../context.ts";
import type { CacheRow } from "../db/caches.ts";
import { badRequest, ServerError } from "../errors.ts";
import { ingest, discardIngested, maxUploadFor, type Ingested } from "../ingest/pipeline.ts";
import { commitNar } from "../ingest/commit.ts";
import { storageFailure } from "../ingest/failures.ts";
import type { UploadCompression } from "../ingest/codecs.ts";
import type { NewObject } from "../db/objects.ts";
import { encodeNixBase32 } from "../nix/base32.ts";
import { parseHash, formatHex, type Sha256 } from "../nix/hash.ts";
import { checkPathMetadata } from "../nix/narinfo.ts";
import { NixFormatError } from "../nix/errors.ts";
import { fingerprint } from "../nix/fingerprint.ts";
import { verifySignature } from "../nix/signing.ts";
import { signatureOf } from "../narinfo-view.ts";
import type { Storage } from "../storage/types.ts";
import { CACHIX_COMPRESSIONS, type CachixCompression, type CompletedMultipartUpload, type NarInfoCreate } from "./types.ts";
import { MAX_PART_BYTES, partKey, partsPrefix, type UploadRow } from "./uploads.ts";
import { placeObject } from "./pending.ts";
import { registeredKeys } from "./keys.ts";

interface CheckedCreate {
  storePath: string;
  narHash: Sha256;
  references: string[];
  deriver: string | null;
}

/** The NarInfoCreate, field by field, by the narinfo parser's own rules. */
function checkCreate(c: NarInfoCreate, storeDir: string): CheckedCreate {
  const storePath = `${storeDir}/${c.cStoreHash}-${c.cStoreSuffix}`;
  if (!/^sha256:/.test(c.cNarHash)) throw badRequest(`narInfoCreate.cNarHash "${c.cNarHash.slice(0, 80)}" must be "sha256:" followed by nix-base32`);
  let narHash: Sha256;
  try {
    narHash = parseHash(c.cNarHash);
  } catch (e) {
    throw badRequest(`narInfoCreate.cNarHash: ${(e as Error).message}`);
  }
  const references = [...new Set(c.cReferences)].sort();
  const deriver = c.cDeriver === "unknown-deriver" || c.cDeriver === "" ? null : c.cDeriver;
  try {
    checkPathMetadata({ storePath, references, deriver, system: null, sigs: [], ca: null }, storeDir);
  } catch (e) {
    if (e instanceof NixFormatError || (e as Error).name === "NarInfoError") throw badRequest(`invalid narInfoCreate: ${(e as Error).message}`);
    throw e;
  }
  return { storePath, narHash, references, deriver };
}

/**
 * The client's own signature (`cachix push` with CACHIX_SIGNING_KEY sends it bare, without a key
 * name) under the name of the registered key it verifies with. One that verifies with none is
 * refused: stored, it would name a key nobody can trust.
 */
async function namedSignature(ctx: AppContext, cache: CacheRow, sig: string, fp: string): Promise<string> {
  if (!/^[A-Za-z0-9+/]{86}==$/.test(sig)) throw badRequest("narInfoCreate.cSig must be the base64 of a 64-byte Ed25519 signature, without a key name");
  const keys = await registeredKeys(ctx.db, cache.id);
  for (const k of keys) {
    const named = `${k.name}:${sig}`;
    if (verifySignature(k, fp, named)) return named;
  }
  throw badRequest(
    keys.length === 0
      ? `narInfoCreate.cSig is set but cache "${cache.name}" has no signing key registered (cachix generate-keypair registers one); push without CACHIX_SIGNING_KEY and larder signs`
      : `narInfoCreate.cSig does not verify with any signing key registered for cache "${cache.name}"`,
  );
}

/** The parts to assemble, in order: those listed, or with `parts: null` every part the client asked a URL for. */
async function partList(ctx: AppContext, upload: UploadRow, listed: CompletedMultipartUpload["parts"]): Promise<number[]> {
  const rows = await ctx.db.kysely.selectFrom("cachix_part").selectAll().where("upload_id", "=", upload.id).orderBy("part_number").execute();
  const byNumber = new Map(rows.map((r) => [r.part_number, r]));
  const numbers = listed === null ? rows.map((r) => r.part_number) : listed.map((p) => p.partNumber);
  if (numbers.length === 0) throw badRequest("the upload has no parts; ask for a part URL and PUT the NAR first");
  numbers.forEach((n, i) => {
    if (n !== i + 1) {
      throw badRequest(`parts must be numbered 1, 2, 3, … in ascending order; entry ${i + 1} is part ${n}`);
    }
  });
  if (listed !== null) {
    for (const p of listed) {
      const row = byNumber.get(p.partNumber);
      if (!row) throw badRequest(`part ${p.partNumber} was never announced (no part URL was asked for it)`);
      const etag = Buffer.from(row.content_md5, "base64").toString("hex");
      if (p.eTag.replace(/"/g, "") !== etag) throw badRequest(`part ${p.partNumber}: eTag ${p.eTag.slice(0, 80)} is not the MD5 announced for it`);
    }
  }
  // Every part must be whole in storage, and no bigger than a part may be.
  for (const n of numbers) {
    const row = byNumber.get(n)!;
    // Where larderd receives parts itself it knows which arrived with the announced bytes.
    if (row.size === null && !ctx.storage.presignPut) throw badRequest(`part ${n} was never uploaded`);
    const head = row.size !== null ? { size: row.size } : await ctx.storage.head(partKey(upload.nar_uuid, n)).catch((e: unknown) => {
      throw storageFailure(e, "storage");
    });
    if (!head) throw badRequest(`part ${n} was never uploaded`);
    if (head.size > MAX_PART_BYTES) throw new ServerError("PayloadTooLarge", `part ${n} is ${head.size} bytes; a part may be at most ${MAX_PART_BYTES}`);
  }
  return numbers;
}

/** The parts as one stream, read from storage one after the other (memory: one read buffer). */
function assembled(storage: Storage, narUuid: string, numbers: number[]): Readable {
  async function* parts(): AsyncGenerator<Buffer> {
    for (const n of numbers) {
      let stream: Readable;
      try {
        stream = await storage.get(partKey(narUuid, n));
      } catch (e) {
        throw storageFailure(e, "storage");
      }
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } catch (e) {
        throw storageFailure(e, "storage");
      } finally {
        stream.destroy();
      }
    }
  }
  return Readable.from(parts(), { objectMode: false });
}

/** Deletes an upload's part objects; best effort (GC's sweep removes what is left). */
export async function deleteParts(storage: Storage, narUuid: string, log: Logger): Promise<void> {
  try {
    const keys: string[] = [];
    for await (const o of storage.list(partsPrefix(narUuid))) keys.push(o.key);
    for (const k of keys) await storage.delete(k);
  } catch (e) {
    log.warn({ err: e, narUuid }, "cachix: could not delete an upload's parts; GC will");
  }
}

export async function completeUpload(
  ctx: AppContext,
  cache: CacheRow,
  upload: UploadRow,
  body: CompletedMultipartUpload,
  createdBy: string | null,
  log: Logger,
): Promise<{ visible: boolean }> {
  const create = body.narInfoCreate;
  const checked = checkCreate(create, cache.store_dir);
  if (create.cNarSize > ctx.config.maxNarSize) {
    throw new ServerError("PayloadTooLarge", `narInfoCreate.cNarSize ${create.cNarSize} exceeds the server's max-nar-size of ${ctx.config.maxNarSize} bytes`);
  }
  const fp = fingerprint(checked.storePath, checked.narHash, create.cNarSize, checked.references);
  const sigs = create.cSig === null || create.cSig === undefined ? [] : [await namedSignature(ctx, cache, create.cSig, fp)];
  const signature = signatureOf(cache, fp);
  const numbers = await partList(ctx, upload, body.parts);

  // Only one completion at a time: the second gets a 409 until the first has answered.
  const claimed = await ctx.db.kysely
    .updateTable("cachix_upload")
    .set({ state: "completing", updated_at: Date.now() })
    .where("id", "=", upload.id)
    .where("state", "=", "open")
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) throw new ServerError("Conflict", `Multipart upload ${upload.nar_uuid} is already being completed.`);
  let done = false;
  try {
    ctx.metrics.uploadsInFlight.inc();
    let ingested: Ingested;
    try {
      ingested = await ingest({
        body: assembled(ctx.storage, upload.nar_uuid, numbers),
        input: CACHIX_COMPRESSIONS.get(upload.compression as CachixCompression) as UploadCompression,
        stored: ctx.config.compression,
        spoolDir: ctx.spoolDir,
        syncBehind: storesOnLocalDisk(ctx.pool.backends),
        maxUploadBytes: maxUploadFor(ctx.config.maxNarSize),
        maxNarBytes: ctx.config.maxNarSize,
      });
    } finally {
      ctx.metrics.uploadsInFlight.dec();
    }
    const uploadHex = ingested.upload.sha256.toString("hex");
    const problems: string[] = [];
    if (!ingested.nar.sha256.equals(checked.narHash.digest)) problems.push(`NarHash is sha256:${ingested.nar.sha256.toString("hex")}, not the claimed ${formatHex(checked.narHash)}`);
    if (ingested.nar.size !== create.cNarSize) problems.push(`NarSize is ${ingested.nar.size}, not the claimed ${create.cNarSize}`);
    if (uploadHex !== create.cFileHash) problems.push(`the assembled file's SHA-256 is ${uploadHex}, not the claimed cFileHash ${create.cFileHash}`);
    if (ingested.upload.size !== create.cFileSize) problems.push(`the assembled file is ${ingested.upload.size} bytes, not the claimed cFileSize ${create.cFileSize}`);
    if (problems.length > 0) {
      await discardIngested(ingested);
      throw badRequest(`the uploaded NAR does not match narInfoCreate: ${problems.join("; ")}`);
    }
    const uploadFileHash = encodeNixBase32(ingested.upload.sha256);
    let visible: string[] = [];
    await commitNar(ctx.db, ctx.pool, ingested, {
      cacheId: cache.id,
      cacheName: cache.name,
      link: async (tx, nar) => {
        const object: NewObject = {
          cacheId: cache.id,
          narId: nar.id,
          storePathHash: create.cStoreHash,
          storePath: checked.storePath,
          references: checked.references,
          deriver: checked.deriver,
          ca: null,
          system: null,
          sigs,
          // So Nix's HEAD on the client's file name (a later `nix copy` of the same bytes) finds it.
          uploadFileHash: uploadFileHash === nar.file_hash ? null : uploadFileHash,
          createdBy,
          signature,
        };
        ({ visible } = await placeObject(tx, object, ingested.upload.size));
        await tx.kysely
          .updateTable("cachix_upload")
          .set({ state: "done", completed_store_hash: create.cStoreHash, updated_at: Date.now() })
          .where("id", "=", upload.id)
          .execute();
      },
    });
    done = true;
    for (const h of visible) {
      ctx.narInfos.invalidate(cache.id, h);
      ctx.bucketLayout?.pathVisible(cache, h);
    }
    ctx.metrics.bytesIngested.inc({ protocol: "cachix" }, ingested.nar.size);
    return { visible: visible.includes(create.cStoreHash) };
  } finally {
    if (done) await deleteParts(ctx.storage, upload.nar_uuid, log);
    // A failed completion may be retried with the same parts.
    else await ctx.db.kysely.updateTable("cachix_upload").set({ state: "open" }).where("id", "=", upload.id).where("state", "=", "completing").execute().catch(() => {});
  }
}
