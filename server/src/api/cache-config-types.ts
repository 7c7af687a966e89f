/**
 * attic's cache-config JSON (serde defaults: snake_case fields, externally tagged enums —
 * `"Generate"` / `{"Keypair": "…"}`, `"Global"` / `{"Period": secs}`). What attic accepts is
 * accepted (any i32 priority, any upstream key name, unknown fields ignored as serde does);
 * only what larder relies on is narrower (a store directory Nix can use).
 */
import { z } from "zod";

export const keypairConfig = z.union([z.literal("Generate"), z.strictObject({ Keypair: z.string() })]);
export const retentionPeriodConfig = z.union([z.literal("Global"), z.strictObject({ Period: z.number().int().nonnegative().max(2 ** 32 - 1) })]);

const storeDir = z.string().regex(/^\/[^\s]*[^/\s]$|^\/$/, "must be an absolute path without a trailing '/'");
// attic: `priority: i32`, `upstream_cache_key_names: Vec<String>`.
const priority = z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1);
const keyNames = z.array(z.string());

export const createCacheRequest = z.object({
  keypair: keypairConfig,
  is_public: z.boolean(),
  store_dir: storeDir,
  priority,
  upstream_cache_key_names: keyNames,
  /** larder's addition: keep a Nix binary-cache layout of this public cache in the S3 bucket (docs/BUCKET.md). */
  bucket_layout: z.boolean().optional(),
});
export type CreateCacheRequest = z.infer<typeof createCacheRequest>;

/** PATCH body; the read-only fields GET returns are tolerated and ignored, as attic does. */
export const cacheConfigPatch = z.object({
  keypair: keypairConfig.optional(),
  substituter_endpoint: z.string().optional(),
  api_endpoint: z.string().optional(),
  nix_push_endpoint: z.string().optional(),
  public_key: z.string().optional(),
  is_public: z.boolean().optional(),
  store_dir: storeDir.optional(),
  priority: priority.optional(),
  upstream_cache_key_names: keyNames.optional(),
  retention_period: retentionPeriodConfig.optional(),
  bucket_layout: z.boolean().optional(),
  bucket_endpoint: z.string().optional(),
});
export type CacheConfigPatch = z.infer<typeof cacheConfigPatch>;

export interface CacheConfigResponse {
  substituter_endpoint: string;
  api_endpoint: string;
  /** larder's addition: where `nix copy --to` pushes (routes/index.ts says why not the substituter URL). */
  nix_push_endpoint: string;
  public_key: string;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string[];
  retention_period: "Global" | { Period: number };
  /**
   * larder's addition: the server stores NARs in zstd at this level, and upload-path takes NAR
   * bodies sent with `Content-Encoding: zstd` (kept as sent, after NarHash and NarSize are
   * checked on the decompressed bytes). Absent when the server stores another compression.
   */
  upload_zstd_level?: number;
  /** larder's addition: whether the cache has a layout in the bucket, and where clients read it (when the server knows). */
  bucket_layout: boolean;
  bucket_endpoint?: string;
}

export function describeZodError(e: z.ZodError): string {
  return e.issues
    .map((i) => {
      const path = i.path.map(String).join(".");
      if (i.code === "unrecognized_keys") return `unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.join(", ")}`;
      return `${path || "body"}: ${i.message}`;
    })
    .join("; ");
}
