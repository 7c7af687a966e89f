/**
 * POST /_api/v1/revoke-token — a token revokes itself (`{"scope":"token"}`, by its jti) or every
 * token of its own subject issued up to now (`{"scope":"subject"}`), e.g. after a CI secret
 * leaked. It needs no permission beyond holding a valid token: revoking can only take rights
 * away. Revoking other subjects is `larderd revoke-token`, run by the operator.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { caller } from "../http/caller.ts";
import { unauthorized } from "../http/cache-access.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { revokeTokenRequest } from "../api/push-types.ts";

export function registerTokenRevoke(app: FastifyInstance, ctx: AppContext): void {
  app.post("/_api/v1/revoke-token", async (req, reply) => {
    const c = await caller(ctx, req);
    if (!c.claims) throw unauthorized(c);
    const parsed = revokeTokenRequest.safeParse(req.body ?? {});
    if (!parsed.success) throw badRequest(`invalid revoke-token request: ${describeZodError(parsed.error)}`);
    const { scope } = parsed.data;
    if (scope === "token") {
      if (c.claims.jti === undefined) throw badRequest('this token has no id (jti) to revoke by; use {"scope":"subject"}');
      await ctx.revocations.revokeJti(c.claims.jti);
    } else {
      await ctx.revocations.revokeSubject(c.claims.sub);
    }
    req.log.info({ sub: c.claims.sub, jti: c.claims.jti, scope }, "token revoked by its holder");
    return reply.send({ revoked: scope, sub: c.claims.sub, ...(c.claims.jti !== undefined && { jti: c.claims.jti }) });
  });
}
