/**
 * POST /api/v1/cache/{name}/key — `cachix generate-keypair` registers the public half of the key
 * it signs pushes with (permission: configure the cache). The key is named `<cache>.<host>-1`
 * and listed in the cache's `publicSigningKeys`.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { apiEndpoint } from "../http/endpoints.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { signingKeyCreate } from "../cachix/types.ts";
import { cachixKeyName, registerKey } from "../cachix/keys.ts";

export function registerCachixKey(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { name: string } }>("/api/v1/cache/:name/key", async (req, reply) => {
    const { cache } = await requireCache(ctx, req, req.params.name, "configureCache");
    const parsed = signingKeyCreate.safeParse(req.body);
    if (!parsed.success) throw badRequest(`invalid SigningKeyCreate: ${describeZodError(parsed.error)}`);
    await registerKey(ctx.db, cache.id, cachixKeyName(cache.name, apiEndpoint(ctx.config, req)), parsed.data.publicKey);
    return reply.code(200).send();
  });
}
