/**
 * PUT /_api/v1/upload-path — attic's push: the uncompressed NAR as the body (chunked, length
 * unknown), its metadata in `X-Attic-Nar-Info` or as a JSON preamble of
 * `X-Attic-Nar-Info-Preamble-Size` bytes before the NAR (the preamble wins, as in attic). The NAR
 * goes through the shared ingest pipeline, its NarHash and NarSize are checked against the claim,
 * and only then is it committed and the path made visible. Reading the whole body before a dedup
 * answer is attic's proof of possession, here always on.
 */
import { storesOnLocalDisk } from "../storage/file.ts";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import type { Caller } from "../http/caller.ts";
import type { Db } from "../db/connect.ts";
import { readPreamble } from "../http/preamble.ts";
import { discardIngested, ingest, maxUploadFor, type Ingested } from "../ingest/pipeline.ts";
import { commitNar } from "../ingest/commit.ts";
import { upsertObject } from "../db/objects.ts";
import { signatureFor } from "../narinfo-view.ts";
import { parseHash, type Sha256 } from "../nix/hash.ts";
import { parseStorePath } from "../nix/store-path.ts";
import { checkPathMetadata, type PathMetadata } from "../nix/narinfo.ts";
import { NixFormatError } from "../nix/errors.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { uploadPathNarInfo, type UploadPathNarInfo, type UploadPathResult } from "../api/push-types.ts";

async function readNarInfo(ctx: AppContext, req: FastifyRequest): Promise<UploadPathNarInfo> {
  const preambleHeader = req.headers["x-attic-nar-info-preamble-size"];
  const infoHeader = req.headers["x-attic-nar-info"];
  let text: string;
  if (typeof preambleHeader === "string") {
    if (!/^\d{1,12}$/.test(preambleHeader.trim())) throw badRequest(`X-Attic-Nar-Info-Preamble-Size "${preambleHeader.slice(0, 40)}" is not a byte count`);
    const size = Number(preambleHeader.trim());
    if (size === 0) throw badRequest("X-Attic-Nar-Info-Preamble-Size is 0; the preamble must hold the upload info JSON");
    if (size > ctx.config.maxNarInfoSize) {
      throw badRequest(`the ${size}-byte preamble exceeds max-nar-info-size (${ctx.config.maxNarInfoSize} bytes)`);
    }
    text = (await readPreamble(req.raw, size)).toString("utf8");
  } else if (typeof infoHeader === "string") {
    text = infoHeader;
  } else {
    throw badRequest("X-Attic-Nar-Info must be set (or X-Attic-Nar-Info-Preamble-Size with the info as a preamble)");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw badRequest("the upload info is not valid JSON");
  }
  const parsed = uploadPathNarInfo.safeParse(json);
  if (!parsed.success) throw badRequest(`invalid upload info: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

interface CheckedInfo {
  narHash: Sha256;
  metadata: PathMetadata;
}

/** attic sends null for what it does not know; an empty string means the same. */
const orNull = (v: string | null | undefined): string | null => (v === undefined || v === null || v === "" ? null : v);

/** The upload info, checked field by field by the narinfo parser's own rules (nix/narinfo.ts). */
function checkInfo(info: UploadPathNarInfo, storeDir: string): CheckedInfo {
  const deriver = orNull(info.deriver);
  const metadata: PathMetadata = {
    storePath: info.store_path,
    // Sorted and de-duplicated as the narinfo parser keeps them: Nix signs the set in that order.
    references: [...new Set(info.references)].sort(),
    // attic's client may send the deriver as a full path; a narinfo carries its base name.
    deriver: deriver === null ? null : deriver.slice(deriver.lastIndexOf("/") + 1),
    system: orNull(info.system),
    sigs: info.sigs,
    ca: orNull(info.ca),
  };
  try {
    checkPathMetadata(metadata, storeDir);
  } catch (e) {
    if (e instanceof NixFormatError) throw badRequest(`invalid upload info: ${e.message}`);
    throw e;
  }
  if (parseStorePath(info.store_path, storeDir).hash !== info.store_path_hash) {
    throw badRequest(`store_path ${info.store_path} does not have the hash ${info.store_path_hash}`);
  }
  if (!/^sha256:/.test(info.nar_hash)) throw badRequest(`nar_hash "${info.nar_hash.slice(0, 80)}" must be "sha256:" followed by hex or nix-base32`);
  let narHash: Sha256;
  try {
    narHash = parseHash(info.nar_hash);
  } catch (e) {
    throw badRequest(`nar_hash: ${(e as Error).message}`);
  }
  return { narHash, metadata };
}

/** Whether `who` may pull from a cache that holds the NAR. */
async function canReadNar(db: Db, who: Caller, narId: number): Promise<boolean> {
  const holders = await db.kysely
    .selectFrom("object")
    .innerJoin("cache", "cache.id", "object.cache_id")
    .select(["cache.name", "cache.is_public"])
    .where("object.nar_id", "=", narId)
    .where("cache.deleted_at", "is", null)
    .distinct()
    .limit(100)
    .execute();
  return holders.some((h) => Boolean(h.is_public) || who.permissionsFor(h.name).pull);
}

/**
 * The NAR body's encoding: attic sends it uncompressed; larder push may send zstd (the cache
 * config's upload_zstd_level), so its own core compresses while the server hashes and stores.
 */
function bodyEncoding(header: string | undefined): "none" | "zstd" {
  const value = header?.trim().toLowerCase();
  if (value === undefined || value === "" || value === "identity") return "none";
  if (value === "zstd") return "zstd";
  throw new ServerError("InvalidCompressionType", `Content-Encoding "${header?.slice(0, 40)}" is not supported for upload-path; send the NAR uncompressed or as zstd`);
}

export function registerUploadPath(app: FastifyInstance, ctx: AppContext): void {
  app.put("/_api/v1/upload-path", async (req, reply) => {
    const encoding = bodyEncoding(req.headers["content-encoding"]);
    const info = await readNarInfo(ctx, req);
    const { cache, caller } = await requireCache(ctx, req, info.cache, "push");
    const checked = checkInfo(info, cache.store_dir);
    if (info.nar_size > ctx.config.maxNarSize) {
      throw new ServerError("PayloadTooLarge", `nar_size ${info.nar_size} exceeds the server's max-nar-size of ${ctx.config.maxNarSize} bytes`);
    }
    ctx.metrics.uploadsInFlight.inc();
    try {
      let ingested: Ingested;
      try {
        ingested = await ingest({
          body: req.raw,
          input: encoding,
          stored: ctx.config.compression,
          spoolDir: ctx.spoolDir,
          syncBehind: storesOnLocalDisk(ctx.pool.backends),
          // More NAR bytes than claimed can only be wrong; a zstd body may be a little larger than its NAR.
          maxUploadBytes: encoding === "none" ? info.nar_size : maxUploadFor(info.nar_size),
          maxNarBytes: info.nar_size,
        });
      } catch (e) {
        if (e instanceof ServerError && e.kind === "PayloadTooLarge") {
          throw badRequest(`Bad NAR Hash or Size: the NAR is longer than nar_size (${info.nar_size} bytes)`);
        }
        throw e;
      }
      if (!ingested.nar.sha256.equals(checked.narHash.digest) || ingested.nar.size !== info.nar_size) {
        await discardIngested(ingested);
        throw badRequest(
          `Bad NAR Hash or Size: received ${ingested.nar.size} bytes hashing to sha256:${ingested.nar.sha256.toString("hex")}, ` +
            `but the upload info claims ${info.nar_size} bytes and sha256:${checked.narHash.digest.toString("hex")} (a truncated upload?)`,
        );
      }
      const object = {
        cacheId: cache.id,
        storePathHash: info.store_path_hash,
        storePath: info.store_path,
        references: checked.metadata.references as string[],
        deriver: checked.metadata.deriver,
        ca: checked.metadata.ca,
        system: checked.metadata.system,
        sigs: checked.metadata.sigs as string[],
        uploadFileHash: null,
        createdBy: caller.claims?.sub ?? null,
        signature: signatureFor(cache, info.store_path, checked.narHash, info.nar_size, checked.metadata.references as string[]),
      };
      const fileSize = ingested.file.size;
      // Saying "Deduplicated" tells the pusher that these exact bytes were already stored. That
      // is only news it may hear if it could already read a cache that held them (invariant 4);
      // otherwise it gets the answer of a first upload, sizes included. Judged before this
      // upload's own link, inside its transaction.
      let visible = false;
      const { nar, deduplicated } = await commitNar(ctx.db, ctx.pool, ingested, {
        cacheId: cache.id,
        cacheName: cache.name,
        link: async (tx, stored, existing) => {
          if (existing) visible = await canReadNar(tx, caller, stored.id);
          await upsertObject(tx, { ...object, narId: stored.id });
        },
      });
      ctx.narInfos.invalidate(cache.id, info.store_path_hash);
      ctx.bucketLayout?.pathVisible(cache, info.store_path_hash);
      ctx.metrics.bytesIngested.inc({ protocol: "attic" }, ingested.nar.size);
      const body: UploadPathResult =
        deduplicated && visible
          ? { kind: "Deduplicated", file_size: nar.file_size, frac_deduplicated: 1 }
          : { kind: "Uploaded", file_size: fileSize, frac_deduplicated: 0 };
      return reply.send(body);
    } finally {
      ctx.metrics.uploadsInFlight.dec();
    }
  });
}
