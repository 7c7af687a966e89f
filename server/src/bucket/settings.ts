/** The one rule for which caches may have a layout, shared by cache creation and configuration. */
import type { AppContext } from "../context.ts";
import { badRequest, type ServerError } from "../errors.ts";

/** Why a cache cannot have a bucket layout, or undefined when it can. */
export function bucketLayoutRefusal(ctx: AppContext, isPublic: boolean): ServerError | undefined {
  if (ctx.bucketLayout === undefined) return badRequest("bucket_layout: this server has no bucket for layouts; set bucket-layout.bucket in server.toml (or use S3 storage)");
  if (!isPublic) return badRequest("bucket_layout: only a public cache can have a layout in the bucket (anyone who can reach the bucket or its CDN reads it); set is_public = true");
  return undefined;
}

