/**
 * DELETE /_api/v1/cache/{cache}/path/{hash or hash-name}[?force=true] — larder's per-path delete (attic has
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
import { isStorePathHash, parseBaseName } from "../nix/store-path.ts";
import type { DeletePathResult } from "../api/push-types.ts";

/** `<hash>` or `<hash>-<name>` (URL-encoded: names may hold "+", "=", "?"). */
function parseTarget(param: string): { hash: string; baseName?: string } {
  let text = param;
  try {
    text = decodeURIComponent(param);
  } catch {
    // Not percent-encoded after all; validated below as it is.
  }
  if (isStorePathHash(text)) return { hash: text };
  try {
    return { hash: parseBaseName(text).hash, baseName: text };
  } catch {
    throw new ServerError("InvalidStorePathHash", `Invalid store path "${text.slice(0, 100)}": expected <32 nix-base32 characters>[-<name>].`);
  }
}

export function registerPathDelete(app: FastifyInstance, ctx: AppContext): void {
  app.delete<{ Params: { cache: string; path: string }; Querystring: Record<string, string | undefined> }>(
    "/_api/v1/cache/:cache/path/:path",
    async (req, reply) => {
      const named = parseTarget(req.params.path);
      const hash = named.hash;
      const unknown = Object.keys(req.query).filter((k) => k !== "force");
      if (unknown.length > 0) throw badRequest(`unknown query parameter ${unknown.join(", ")}; only force=true is accepted`);
      const force = req.query.force;
      if (force !== undefined && force !== "true" && force !== "false") throw badRequest(`force must be "true" or "false", not "${force.slice(0, 20)}"`);
      const { cache, caller } = await requireCache(ctx, req, req.params.cache, "delete");
      const found = await findObject(ctx.db, cache.id, hash);
      if (!found) throw new ServerError("NoSuchObject");
      const baseName = found.object.store_path.slice(found.object.store_path.lastIndexOf("/") + 1);
      // A hash names one path, but a user who typed a name meant that one: /nix/store/<hash>-x
      // must never delete <hash>-app-d.
      if (named.baseName !== undefined && named.baseName !== baseName) {
        throw new ServerError("NoSuchObject", `Cache "${cache.name}" has no ${named.baseName}: its path with that hash is ${found.object.store_path}; nothing was deleted.`);
      }
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
