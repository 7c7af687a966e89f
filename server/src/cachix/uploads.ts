/**
 * Cachix multipart uploads: the rows that track them, where their parts live in storage, and the
 * capability in the part URLs larderd serves itself. The client PUTs parts without any
 * Authorization header, so the URL alone must authorize exactly one part of one open upload, with
 * the MD5 the client announced, for a short while.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { Selectable } from "kysely";
import type { Db } from "../db/connect.ts";
import type { CachixUploadTable } from "../db/schema.ts";
import { ServerError } from "../errors.ts";

export type UploadRow = Selectable<CachixUploadTable>;

/** How long a part URL may be used; the client asks for one right before each PUT. */
export const PART_URL_SECONDS = 3600;
/** S3's own limit for a part, and the most one part URL accepts. */
export const MAX_PART_BYTES = 5 * 1024 ** 3;
export const MAX_PARTS = 10_000;

const PARTS_PREFIX = "cachix-parts/";

export function partKey(narUuid: string, partNumber: number): string {
  return `${PARTS_PREFIX}${narUuid}/${partNumber}`;
}

export function partsPrefix(narUuid?: string): string {
  return narUuid === undefined ? PARTS_PREFIX : `${PARTS_PREFIX}${narUuid}/`;
}

/** The upload a key under partsPrefix() belongs to. */
export function uploadOfPartKey(key: string): string | undefined {
  const m = /^cachix-parts\/([0-9a-f-]{36})\/\d+$/.exec(key);
  return m?.[1];
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isNarUuid(s: string): boolean {
  return UUID_RE.test(s);
}

export async function createUpload(db: Db, cacheId: number, compression: string, createdBy: string | null, now = Date.now()): Promise<UploadRow> {
  return db.kysely
    .insertInto("cachix_upload")
    .values({
      cache_id: cacheId,
      nar_uuid: randomUUID(),
      upload_id: randomBytes(24).toString("base64url"),
      secret: randomBytes(32).toString("hex"),
      compression,
      state: "open",
      completed_store_hash: null,
      created_by: createdBy,
      created_at: now,
      updated_at: now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

const noSuchUpload = (narUuid: string) =>
  new ServerError("NotFound", `No multipart upload ${narUuid.slice(0, 40)} with this uploadId in this cache (aborted, expired, or never created).`);

/** The upload named by the URL's narId and its uploadId query, in this cache. */
export async function findUpload(db: Db, cacheId: number, narUuid: string, uploadId: unknown): Promise<UploadRow> {
  if (!isNarUuid(narUuid) || typeof uploadId !== "string") throw noSuchUpload(narUuid);
  const row = await db.kysely.selectFrom("cachix_upload").selectAll().where("nar_uuid", "=", narUuid).where("cache_id", "=", cacheId).executeTakeFirst();
  if (!row) throw noSuchUpload(narUuid);
  const a = Buffer.from(row.upload_id);
  const b = Buffer.from(uploadId);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw noSuchUpload(narUuid);
  return row;
}

export function assertOpen(upload: UploadRow): void {
  if (upload.state !== "open") {
    throw new ServerError("Conflict", `Multipart upload ${upload.nar_uuid} is ${upload.state === "done" ? "already complete" : "being completed"}; it takes no more parts.`);
  }
}

/** What a part URL served by larderd carries besides the upload and part number. */
export interface PartCapability {
  md5: string;
  expires: number;
  sig: string;
}

function mac(upload: UploadRow, partNumber: number, md5: string, expires: number): Buffer {
  return createHmac("sha256", Buffer.from(upload.secret, "hex")).update(`larder-cachix-part\n${upload.nar_uuid}\n${partNumber}\n${md5}\n${expires}`).digest();
}

export function signPart(upload: UploadRow, partNumber: number, md5: string, now = Date.now()): PartCapability {
  const expires = Math.floor(now / 1000) + PART_URL_SECONDS;
  return { md5, expires, sig: mac(upload, partNumber, md5, expires).toString("base64url") };
}

/** Throws a 403 unless `cap` was made by signPart for this upload and part, and is not expired. */
export function checkPart(upload: UploadRow, partNumber: number, cap: Partial<Record<keyof PartCapability, unknown>>, now = Date.now()): PartCapability {
  const { md5, expires, sig } = cap;
  const exp = typeof expires === "string" && /^\d{1,12}$/.test(expires) ? Number(expires) : NaN;
  if (typeof md5 !== "string" || typeof sig !== "string" || !Number.isFinite(exp)) {
    throw new ServerError("AccessError", "Access error: the part URL lacks its md5, expires or sig parameter; ask for a new one.");
  }
  const given = Buffer.from(sig, "base64url");
  const want = mac(upload, partNumber, md5, exp);
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new ServerError("AccessError", "Access error: the part URL's signature does not match this upload and part; ask for a new one.");
  }
  if (exp * 1000 < now) throw new ServerError("AccessError", "Access error: the part URL has expired; ask for a new one.");
  return { md5, expires: exp, sig };
}

export async function touchUpload(db: Db, id: number, now = Date.now()): Promise<void> {
  await db.kysely.updateTable("cachix_upload").set({ updated_at: now }).where("id", "=", id).execute();
}
