/**
 * GET/HEAD /{cache}/<hash>.ls — the NAR's file listing (`{"version":1,"root":…}`, as Nix writes
 * with write-nar-listing), made once at ingest. Same access rules as the narinfo: a path this
 * cache does not serve is a 404 here too. A NAR stored before listings existed is listed on its
 * first request (listing-store.ts); a listing past NAR_LISTING_MAX_BYTES is not kept: 404.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findListing } from "../db/listings.ts";
import { isStorePathHash } from "../nix/store-path.ts";
import { decompressListing, listStoredNar } from "../listing-store.ts";

export function registerNarListingGet(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.get<{ Params: { cache: string; hash: string } }>(`${prefix}/:cache/:hash.ls`, async (req, reply) => {
    const { hash } = req.params;
    if (!isStorePathHash(hash)) {
      throw new ServerError("InvalidStorePathHash", `Invalid store path hash "${hash.slice(0, 64)}": expected 32 nix-base32 characters.`);
    }
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    if (cache.is_public) reply.header("x-attic-cache-visibility", "public");
    const found = await findListing(ctx.db, cache.id, hash);
    let listing: Buffer | null;
    if (found.kind === "absent") throw new ServerError("NoSuchObject");
    else if (found.kind === "missing") listing = await listStoredNar(ctx.db, ctx.pool, found);
    else listing = found.listing === null ? null : await decompressListing(found.listing);
    if (listing === null) throw new ServerError("NoSuchObject", "This path's listing is too large to be kept.");
    return reply.type("application/json").send(listing);
  });
}
