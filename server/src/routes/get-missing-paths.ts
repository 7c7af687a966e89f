/**
 * POST /_api/v1/get-missing-paths — permission `w`. One query for any number of hashes
 * (`existingHashes` passes the list as one JSON/array parameter, so 10,000 hashes never meet a
 * SQL parameter limit); answers the hashes this cache lacks, in the order asked, without repeats.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { existingHashes } from "../db/objects.ts";
import { touchHashes } from "../db/access.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { getMissingPathsRequest, type GetMissingPathsResponse } from "../api/push-types.ts";

export function registerGetMissingPaths(app: FastifyInstance, ctx: AppContext): void {
  app.post("/_api/v1/get-missing-paths", async (req, reply) => {
    const parsed = getMissingPathsRequest.safeParse(req.body);
    if (!parsed.success) {
      const bad = parsed.error.issues.find((i) => i.path[0] === "store_path_hashes" && i.path.length === 2);
      if (bad) throw new ServerError("InvalidStorePathHash", `Invalid store path hash at store_path_hashes[${String(bad.path[1])}]: expected 32 nix-base32 characters.`);
      throw badRequest(`invalid get-missing-paths request: ${describeZodError(parsed.error)}`);
    }
    const { cache } = await requireCache(ctx, req, parsed.data.cache, "push");
    const unique = [...new Set(parsed.data.store_path_hashes)];
    const have = await existingHashes(ctx.db, cache.id, unique);
    // What the client now will not upload must not be collected before its referrers arrive.
    await touchHashes(ctx.db, cache.id, [...have], Date.now());
    const body: GetMissingPathsResponse = { missing_paths: unique.filter((h) => !have.has(h)) };
    return reply.send(body);
  });
}
