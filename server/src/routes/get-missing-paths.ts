/**
 * POST /_api/v1/get-missing-paths — permission `w`. Answers the hashes this cache lacks, in the
 * order asked, without repeats. At most MAX_MISSING_PATHS_HASHES per request (a 413 names the
 * limit; a closure bigger than that is asked about in batches), looked up in slices with the
 * event loop free between them, so one huge request cannot stall every other request.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { presentObjects } from "../db/objects.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { getMissingPathsRequest, MAX_MISSING_PATHS_HASHES, type GetMissingPathsResponse } from "../api/push-types.ts";

const SLICE = 5000;
// A full request's JSON (`"<32 chars>",` per hash) with room to spare; bigger bodies are refused unread.
const BODY_LIMIT = MAX_MISSING_PATHS_HASHES * 40 + 64 * 1024;

const tooMany = (n: number | string) =>
  new ServerError("PayloadTooLarge", `get-missing-paths takes at most ${MAX_MISSING_PATHS_HASHES} store_path_hashes per request (got ${n}); ask in batches.`);

/**
 * The hashes a cache lacks, in the order asked, without repeats; the ones it has count as used
 * now. Also the Cachix client's narinfo query.
 */
export async function missingHashes(ctx: AppContext, cacheId: number, hashes: readonly string[]): Promise<string[]> {
  const unique = [...new Set(hashes)];
  const missing: string[] = [];
  for (let i = 0; i < unique.length; i += SLICE) {
    const slice = unique.slice(i, i + SLICE);
    const have = await presentObjects(ctx.db, cacheId, slice);
    // What the client now will not upload must not be collected before its referrers arrive.
    // Marked as a narinfo hit is, in memory and written off the request path (writing 5,000 rows
    // of a large cache took hundreds of milliseconds): GC waits out the other servers' unwritten
    // marks before judging retention, and the in-process loop writes its own first (gc/run.ts).
    for (const id of have.values()) ctx.accessTracker.touch(id);
    for (const h of slice) if (!have.has(h)) missing.push(h);
  }
  return missing;
}

export function registerGetMissingPaths(app: FastifyInstance, ctx: AppContext): void {
  app.post("/_api/v1/get-missing-paths", { bodyLimit: BODY_LIMIT }, async (req, reply) => {
    const hashes = (req.body as { store_path_hashes?: unknown } | undefined)?.store_path_hashes;
    if (Array.isArray(hashes) && hashes.length > MAX_MISSING_PATHS_HASHES) throw tooMany(hashes.length);
    const parsed = getMissingPathsRequest.safeParse(req.body);
    if (!parsed.success) {
      const bad = parsed.error.issues.find((i) => i.path[0] === "store_path_hashes" && i.path.length === 2);
      if (bad) throw new ServerError("InvalidStorePathHash", `Invalid store path hash at store_path_hashes[${String(bad.path[1])}]: expected 32 nix-base32 characters.`);
      throw badRequest(`invalid get-missing-paths request: ${describeZodError(parsed.error)}`);
    }
    const { cache } = await requireCache(ctx, req, parsed.data.cache, "push");
    const body: GetMissingPathsResponse = { missing_paths: await missingHashes(ctx, cache.id, parsed.data.store_path_hashes) };
    return reply.send(body);
  });
}
