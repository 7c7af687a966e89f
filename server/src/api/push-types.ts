/**
 * attic's push API bodies (`attic/src/api/v1/{get_missing_paths,upload_path}.rs`), validated
 * at the edge: serde field names, `nar_hash` as `sha256:` + hex or nix32. Unknown fields are
 * ignored, as serde does without `deny_unknown_fields`, so a newer attic client keeps working.
 */
import { z } from "zod";

const hash32 = z.string().regex(/^[0-9a-df-np-sv-z]{32}$/, "must be a 32-character nix-base32 store path hash");

/**
 * Hashes one get-missing-paths request may carry (413 beyond): far above any real closure (a
 * NixOS system has a few thousand paths); bigger sets are asked about in batches.
 */
export const MAX_MISSING_PATHS_HASHES = 100_000;

export const getMissingPathsRequest = z.object({
  cache: z.string(),
  store_path_hashes: z.array(hash32),
});
export type GetMissingPathsRequest = z.infer<typeof getMissingPathsRequest>;

export interface GetMissingPathsResponse {
  missing_paths: string[];
}

export const uploadPathNarInfo = z.object({
  cache: z.string(),
  store_path_hash: hash32,
  store_path: z.string(),
  references: z.array(z.string()),
  system: z.string().nullable().optional(),
  deriver: z.string().nullable().optional(),
  sigs: z.array(z.string()),
  ca: z.string().nullable().optional(),
  nar_hash: z.string(),
  nar_size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type UploadPathNarInfo = z.infer<typeof uploadPathNarInfo>;

export interface UploadPathResult {
  kind: "Uploaded" | "Deduplicated";
  file_size: number;
  frac_deduplicated: number;
}

/** larder's own extension: what `DELETE /_api/v1/cache/{cache}/path/{hash}` answers. */
export interface DeletePathResult {
  deleted: string;
}

/** larder's own extension: `POST /_api/v1/revoke-token`. */
export const revokeTokenRequest = z.strictObject({
  /** "token": this token only (by its jti); "subject": every token of this token's subject issued before now. */
  scope: z.enum(["token", "subject"]).default("token"),
});
