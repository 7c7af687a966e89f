/**
 * Pins: named GC roots per cache. A pin keeps its path and the path's whole closure in the cache
 * whatever the retention; moving a pin name to a new path (CI pins "main" to the latest build)
 * releases the old closure to retention.
 *   GET    /_api/v1/pins/{cache}          list (permission r)
 *   PUT    /_api/v1/pins/{cache}/{name}   {"store_path": "/nix/store/…"} (permission w)
 *   DELETE /_api/v1/pins/{cache}/{name}   (permission w)
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { findObject } from "../db/objects.ts";
import { parseStorePath } from "../nix/store-path.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { isReservedPinName, RESERVED_PIN_PREFIX } from "../deploy/pins.ts";

const PIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;
const pinBody = z.strictObject({ store_path: z.string() });

function assertPinName(name: string): void {
  if (!PIN_NAME.test(name)) throw badRequest(`invalid pin name "${name.slice(0, 100)}": use 1–100 of A-Z a-z 0-9 . _ + -, starting with a letter or digit`);
  // larder deploy keeps deployed closures and their rollback targets under these names.
  if (isReservedPinName(name)) throw badRequest(`pin names starting with "${RESERVED_PIN_PREFIX}" are reserved for larder deploy`);
}

export function registerPins(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { cache: string } }>("/_api/v1/pins/:cache", async (req, reply) => {
    const { cache } = await requireCache(ctx, req, req.params.cache, "pull");
    const rows = await ctx.db.kysely
      .selectFrom("pin")
      .leftJoin("object", (j) => j.onRef("object.cache_id", "=", "pin.cache_id").onRef("object.store_path_hash", "=", "pin.store_path_hash"))
      .select(["pin.name", "pin.store_path_hash", "pin.created_at", "object.store_path"])
      .where("pin.cache_id", "=", cache.id)
      .orderBy("pin.name")
      .execute();
    return reply.send({
      pins: rows.map((r) => ({ name: r.name, store_path: r.store_path, store_path_hash: r.store_path_hash, pinned_at: new Date(r.created_at).toISOString() })),
    });
  });

  app.put<{ Params: { cache: string; name: string } }>("/_api/v1/pins/:cache/:name", async (req, reply) => {
    assertPinName(req.params.name);
    const { cache } = await requireCache(ctx, req, req.params.cache, "push");
    const parsed = pinBody.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid pin: ${describeZodError(parsed.error)}`);
    let hash: string;
    try {
      hash = parseStorePath(parsed.data.store_path, cache.store_dir).hash;
    } catch (e) {
      throw badRequest(`store_path: ${(e as Error).message}`);
    }
    if (!(await findObject(ctx.db, cache.id, hash))) throw new ServerError("NoSuchObject", `${parsed.data.store_path} is not in cache "${cache.name}"; push it first.`);
    await ctx.db.kysely
      .insertInto("pin")
      .values({ cache_id: cache.id, name: req.params.name, store_path_hash: hash, created_at: Date.now() })
      .onConflict((oc) => oc.columns(["cache_id", "name"]).doUpdateSet({ store_path_hash: hash, created_at: Date.now() }))
      .execute();
    return reply.code(200).send({ name: req.params.name, store_path: parsed.data.store_path });
  });

  app.delete<{ Params: { cache: string; name: string } }>("/_api/v1/pins/:cache/:name", async (req, reply) => {
    assertPinName(req.params.name);
    const { cache } = await requireCache(ctx, req, req.params.cache, "push");
    const r = await ctx.db.kysely.deleteFrom("pin").where("cache_id", "=", cache.id).where("name", "=", req.params.name).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new ServerError("NoSuchObject", `No pin "${req.params.name}" in cache "${cache.name}".`);
    return reply.code(200).send();
  });
}
