/**
 * Table types shared by SQLite and PostgreSQL. Times are epoch milliseconds and booleans are
 * 0/1 integers in both, so one query layer serves both dialects without per-dialect mapping.
 */
import type { Generated } from "kysely";

export interface CacheTable {
  id: Generated<number>;
  name: string;
  /** Nix secret key `name:base64(seed‖pub)`. */
  keypair: string;
  /** Bumped when the keypair changes, so stored signatures made by an older key are redone. */
  key_version: number;
  is_public: number;
  store_dir: string;
  priority: number;
  /** JSON array of key names. */
  upstream_cache_key_names: string;
  /** Seconds; null follows the global default. */
  retention_period: number | null;
  created_at: number;
  deleted_at: number | null;
  /** 1: larder keeps a Nix binary-cache layout of this (public) cache in the S3 bucket (bucket/). */
  bucket_layout: Generated<number>;
}

export interface NarTable {
  id: Generated<number>;
  /** Hex SHA-256 of the uncompressed NAR; unique: every NAR is stored once across all caches. */
  nar_hash: string;
  nar_size: number;
  compression: string;
  /** Nix-base32 SHA-256 of the stored (compressed) bytes; names the NAR in served narinfos. */
  file_hash: string;
  file_size: number;
  storage_key: string;
  /** Name of the storage backend holding the bytes. */
  backend: Generated<string>;
  created_at: number;
}

export interface ObjectTable {
  id: Generated<number>;
  cache_id: number;
  nar_id: number;
  store_path_hash: string;
  store_path: string;
  /** JSON array of reference base names, in the uploader's order. */
  refs: string;
  deriver: string | null;
  ca: string | null;
  system: string | null;
  /** JSON array of signatures the uploader sent. */
  sigs: string;
  /** Nix-base32 file hash of the uploader's compressed NAR, so HEAD on its URL answers "have it". */
  upload_file_hash: string | null;
  /** Our signature over the fingerprint, made once per object and key version. */
  signature: string | null;
  signature_key_version: number | null;
  created_at: number;
  last_accessed_at: number;
  created_by: string | null;
}

export interface StagedNarTable {
  id: Generated<number>;
  cache_id: number;
  /** Nix-base32 hash of the uploaded compressed bytes, as named in the PUT URL. */
  upload_file_hash: string;
  upload_file_size: number;
  nar_id: number;
  created_at: number;
}

export interface PinTable {
  id: Generated<number>;
  cache_id: number;
  name: string;
  store_path_hash: string;
  created_at: number;
}

export interface RevokedTokenTable {
  id: Generated<number>;
  /** Revokes one token by its `jti`. */
  jti: string | null;
  /** Revokes every token of `subject` issued (nbf/iat) before `issued_before`. */
  subject: string | null;
  issued_before: number | null;
  created_at: number;
}

export interface ObjectRefTable {
  object_id: number;
  cache_id: number;
  /** Store-path hash of a path the object refers to (self-references included). */
  ref_hash: string;
}

export interface StorageJournalTable {
  storage_key: string;
  /** "upload": written but not yet recorded in `nar`; "delete": dropped from `nar`, bytes still to delete. */
  kind: "upload" | "delete";
  backend: Generated<string>;
  created_at: number;
  /** A moved NAR's old copy: not deleted before this time. */
  delete_after: number | null;
  /** Stored bytes, when known (they count against the backend's capacity until deleted). */
  size: number | null;
}

export interface StorageBackendTable {
  name: string;
  /** 1: takes no new objects (being drained). */
  draining: number;
  updated_at: number;
}

export interface NarListingTable {
  nar_id: number;
  /** zstd-compressed `.ls` JSON; null when the listing outgrew NAR_LISTING_MAX_BYTES. */
  listing: Buffer | null;
  created_at: number;
}

export interface BuildLogTable {
  id: Generated<number>;
  cache_id: number;
  /** Base name of the derivation, `<hash>-<name>.drv`, as in the URL and in narinfo Deriver lines. */
  drv_name: string;
  /** zstd-compressed log bytes. */
  storage_key: string;
  backend: Generated<string>;
  /** Uncompressed bytes. */
  size: number;
  created_at: number;
}

export interface RealisationTable {
  id: Generated<number>;
  cache_id: number;
  /** `sha256:<hex>!<output>`. */
  drv_output: string;
  /** Base name of the output path. */
  out_path: string;
  out_path_hash: string;
  /** JSON object: derivation output id → out path base name. */
  dependents: string;
  /** JSON array of the uploader's signatures. */
  sigs: string;
  /** Ours, over the realisation's fingerprint, made once per key version. */
  signature: string | null;
  signature_key_version: number | null;
  created_at: number;
}

export interface CachixUploadTable {
  id: Generated<number>;
  cache_id: number;
  /** The `narId` the client names the upload by (a lowercase UUID). */
  nar_uuid: string;
  /** The `uploadId` every call of the upload must repeat. */
  upload_id: string;
  /** Hex key of the HMAC in part URLs that larderd serves. */
  secret: string;
  /** "xz" or "zst", as the client named it. */
  compression: string;
  /** "open", "completing" or "done". */
  state: string;
  completed_store_hash: string | null;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

export interface CachixPartTable {
  upload_id: number;
  part_number: number;
  /** Base64 MD5 the client announced for the part. */
  content_md5: string;
  size: number | null;
}

export interface CachixPendingTable {
  id: Generated<number>;
  cache_id: number;
  staged_id: number;
  store_path_hash: string;
  /** JSON of the object to insert once every reference is present. */
  object: string;
  created_at: number;
}

export interface CachixPendingRefTable {
  pending_id: number;
  cache_id: number;
  /** A reference the pending path still waits for. */
  ref_hash: string;
}

export interface CachixKeyTable {
  id: Generated<number>;
  cache_id: number;
  key_name: string;
  /** Base64 of the raw 32-byte Ed25519 public key. */
  public_key: string;
  created_at: number;
}

export interface DeployEnvironmentTable {
  id: Generated<number>;
  cache_id: number;
  name: string;
  /** Bumped on every change agents act on; long polls compare against it. */
  generation: number;
  current_deployment_id: number | null;
  created_at: number;
}

export interface DeploymentTable {
  id: Generated<number>;
  environment_id: number;
  /** DeploymentState. */
  state: string;
  /** JSON: agent group (or "*") → {storePath, activation}. */
  targets: string;
  /** JSON RolloutSettings, defaults filled in. */
  rollout: string;
  /** JSON array of the store paths deployed before this one (pinned as rollback targets). */
  previous: string;
  created_by: string | null;
  message: string | null;
  rollback_of: number | null;
  /** Why the deployment paused or failed. */
  reason: string | null;
  /** none | pending | running | succeeded | failed. */
  migration_state: string;
  migration_agent: string | null;
  created_at: number;
  finished_at: number | null;
}

export interface DeployAgentTable {
  id: Generated<number>;
  environment_id: number;
  name: string;
  group_name: string;
  /** AgentState. */
  state: string;
  current_path: string | null;
  /** The deployment the agent last reported about. */
  deployment_id: number | null;
  /** The deployment in which the agent was granted a slot (it counts as started there). */
  run_deployment_id: number | null;
  /** What the agent ran when it got that slot: where it returns on failure. */
  previous_path: string | null;
  /** Set while the agent holds a rollout slot of that deployment. */
  slot_deployment_id: number | null;
  slot_granted_at: number | null;
  message: string | null;
  last_seen_at: number;
  created_at: number;
}

export interface DeployLogTable {
  id: Generated<number>;
  deployment_id: number;
  agent: string;
  step: string;
  ok: number;
  /** The tail of the step's output. */
  log: string;
  created_at: number;
}

export interface BucketEntryTable {
  id: Generated<number>;
  cache_id: number;
  /** Where the entry lives in the bucket, e.g. `public/main/`. */
  prefix: string;
  /** "info" (nix-cache-info), "path" (narinfo + NAR + listing), "log", "realisation". */
  kind: "info" | "path" | "log" | "realisation";
  /** Store-path hash, derivation base name, realisation id; "nix-cache-info" for info. */
  name: string;
  /** A path's NAR key relative to `prefix`. */
  nar_key: string | null;
  /** "writing": keys may be partly written; "published": complete; "removing": keys being deleted. */
  state: "writing" | "published" | "removing";
  /** The cache key version the written signature was made with. */
  key_version: number;
  updated_at: number;
}

export interface BucketRefTable {
  entry_id: number;
  cache_id: number;
  ref_hash: string;
}

export interface Database {
  cache: CacheTable;
  nar: NarTable;
  object: ObjectTable;
  staged_nar: StagedNarTable;
  pin: PinTable;
  revoked_token: RevokedTokenTable;
  object_ref: ObjectRefTable;
  storage_journal: StorageJournalTable;
  nar_listing: NarListingTable;
  build_log: BuildLogTable;
  realisation: RealisationTable;
  cachix_upload: CachixUploadTable;
  cachix_part: CachixPartTable;
  cachix_pending: CachixPendingTable;
  cachix_pending_ref: CachixPendingRefTable;
  cachix_key: CachixKeyTable;
  deploy_environment: DeployEnvironmentTable;
  deployment: DeploymentTable;
  deploy_agent: DeployAgentTable;
  deploy_log: DeployLogTable;
  bucket_entry: BucketEntryTable;
  bucket_ref: BucketRefTable;
  storage_backend: StorageBackendTable;
}
