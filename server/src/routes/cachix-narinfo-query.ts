/**
 * POST /api/v1/cache/{name}/narinfo — the store hashes of a closure in, those the cache lacks out
 * (what `cachix push` and `watch-store` then upload). A path held back for its references counts
 * as missing: the client uploads it again, with what it waits for.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { MAX_NARINFO_QUERY, narinfoQuery } from "../cachix/types.ts";
import { missingHashes } from "./get-missing-paths.ts";

// The client sends batches of 32,768 hashes (about 1.2 MB of JSON); room for the limit.
const BODY_LIMIT = MAX_NARINFO_QUERY * 40 + 64 * 1024;

export function registerCachixNarinfoQuery(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string } }>("/api/v1/cache/:name/narinfo", { bodyLimit: BODY_LIMIT }, async (req, reply) => {
    const { cache } = await requireCache(ctx, req, req.params.name, "push");
    if (Array.isArray(req.body) && req.body.length > MAX_NARINFO_QUERY) {
      throw new ServerError("PayloadTooLarge", `…/narinfo takes at most ${MAX_NARINFO_QUERY} hashes per request (got ${req.body.length}); ask in batches.`);
    }
    const parsed = narinfoQuery.safeParse(req.body);
    if (!parsed.success) {
      const bad = parsed.error.issues.find((i) => i.path.length === 1);
      if (bad) throw new ServerError("InvalidStorePathHash", `Invalid store path hash at [${String(bad.path[0])}]: expected 32 nix-base32 characters.`);
      throw badRequest(`the body must be a JSON array of store path hashes: ${describeZodError(parsed.error)}`);
    }
    return reply.send(await missingHashes(ctx, cache.id, parsed.data));
  });
}
