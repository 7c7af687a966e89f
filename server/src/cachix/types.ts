/**
 * The Cachix client's JSON bodies (cachix-api `Cachix.Types.*`, Aeson generic encoding: record
 * field names verbatim, `null` for Nothing), validated at the edge. Unknown fields are ignored,
 * as Aeson does, so a newer client keeps working.
 */
import { z } from "zod";

const hash32 = z.string().regex(/^[0-9a-df-np-sv-z]{32}$/, "must be a 32-character nix-base32 store path hash");
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The body of POST …/narinfo: store hashes; the answer lists those the cache lacks. */
export const MAX_NARINFO_QUERY = 100_000;
export const narinfoQuery = z.array(hash32).max(MAX_NARINFO_QUERY);

/** `NarInfoCreate`: every field `c`-prefixed; `cFileHash` lowercase hex without `sha256:`. */
export const narInfoCreate = z.object({
  cStoreHash: hash32,
  cStoreSuffix: z.string().min(1).max(211),
  cNarHash: z.string().max(200),
  cNarSize: size.min(1),
  cFileHash: z.string().regex(/^[0-9a-f]{64}$/, "must be the lowercase hex SHA-256 of the uploaded file"),
  cFileSize: size,
  cReferences: z.array(z.string().max(300)).max(100_000),
  cDeriver: z.string().max(300),
  cSig: z.string().max(200).nullable().optional(),
});
export type NarInfoCreate = z.infer<typeof narInfoCreate>;

/** `CompletedMultipartUpload`: `parts` is null when any part PUT came back without an ETag. */
export const completedMultipartUpload = z.object({
  parts: z
    .array(z.object({ partNumber: z.number().int().min(1).max(10_000), eTag: z.string().max(200) }))
    .min(1)
    .max(10_000)
    .nullable(),
  narInfoCreate,
});
export type CompletedMultipartUpload = z.infer<typeof completedMultipartUpload>;

/** `SigningData`: the base64 MD5 of the part the client is about to PUT. */
export const signingData = z.object({
  contentMD5: z.string().regex(/^[A-Za-z0-9+/]{22}==$/, "must be the base64 MD5 of the part (24 characters)"),
});

/** `SigningKeyCreate`: base64 of a raw 32-byte Ed25519 public key. */
export const signingKeyCreate = z.object({
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, "must be the base64 of a 32-byte Ed25519 public key"),
});

/** The `compression` query of POST …/multipart-nar (`zst`, not `zstd`). */
export const CACHIX_COMPRESSIONS = new Map([
  ["xz", "xz"],
  ["zst", "zstd"],
] as const);
export type CachixCompression = "xz" | "zst";

/** `BinaryCache`: all seven fields must be present for the client to decode it. */
export interface BinaryCache {
  name: string;
  uri: string;
  isPublic: boolean;
  publicSigningKeys: string[];
  githubUsername: string;
  permission: "Read" | "Write" | "Admin";
  preferredCompressionMethod: "XZ" | "ZSTD";
}

export interface CreateMultipartUploadResponse {
  narId: string;
  uploadId: string;
}

export interface UploadPartResponse {
  uploadUrl: string;
}
