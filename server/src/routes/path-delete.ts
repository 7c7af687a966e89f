/**
 * DELETE /_api/v1/cache/{cache}/path/{hash}[?force=true] — larder's per-path delete (attic has
 * none, though its tokens carry the `d` permission for it). The path stops being served at once;
 * its NAR is left to GC, which frees it when no cache uses it. Refused with 409 while another
 * path in the cache references it — a hole in a served closure breaks every client that
 * substitutes the referrer — unless forced.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { deleteObject, findObject, referrers } from "../db/objects.ts";
import { isStorePathHash } from "../nix/store-path.ts";
import type { DeletePathResult } from "../api/push-types.ts";

export function registerPathDelete(app: FastifyInstance, ctx: AppContext): void {
  app.delete<{ Params: { cache: string; hash: string }; Querystring: Record<string, string | undefined> }>(
    "/_api/v1/cache/:cache/path/:hash",
    async (req, reply) => {
      const { hash } = req.params;
      if (!isStorePathHash(hash)) {
        throw new ServerError("InvalidStorePathHash", `Invalid store path hash "${hash.slice(0, 64)}": expected 32 nix-base32 characters.`);
      }
      const unknown = Object.keys(req.query).filter((k) => k !== "force");
      if (unknown.length > 0) throw badRequest(`unknown query parameter ${unknown.join(", ")}; only force=true is accepted`);
      const force = req.query.force;
      if (force !== undefined && force !== "true" && force !== "false") throw badRequest(`force must be "true" or "false", not "${force.slice(0, 20)}"`);
      const { cache, caller } = await requireCache(ctx, req, req.params.cache, "delete");
      const found = await findObject(ctx.db, cache.id, hash);
      if (!found) throw new ServerError("NoSuchObject");
      const baseName = found.object.store_path.slice(found.object.store_path.lastIndexOf("/") + 1);
      if (force !== "true") {
        const by = await referrers(ctx.db, cache.id, baseName);
        if (by.length > 0) {
          throw new ServerError(
            "Conflict",
            `${found.object.store_path} is referenced by ${by.join(", ")}${by.length === 10 ? " (and maybe more)" : ""} in cache "${cache.name}"; delete those first, or delete it anyway with larder delete --force (force=true in the API)`,
          );
        }
      }
      await deleteObject(ctx.db, found.object.id);
      ctx.narInfos.invalidate(cache.id, hash);
      req.log.info({ cache: cache.name, path: found.object.store_path, sub: caller.claims?.sub, force: force === "true" }, "path deleted");
      const body: DeletePathResult = { deleted: found.object.store_path };
      return reply.send(body);
    },
  );
}
