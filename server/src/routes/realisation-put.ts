/**
 * PUT /{cache}/realisations/<drv output id>.doi — a content-addressed derivation's output, as
 * `nix copy --to` sends it with ca-derivations on. The JSON is validated (id matching the URL,
 * outPath, signatures, dependentRealisations) and signed by the cache's key once. A second
 * upload for the same output must name the same path (409 otherwise) and adds its signatures.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { badRequest, ServerError } from "../errors.ts";
import { requireCache } from "../http/cache-access.ts";
import { readSmallBody } from "../http/body.ts";
import { saveRealisation } from "../db/realisations.ts";
import { NixFormatError } from "../nix/errors.ts";
import { parseRealisation } from "../nix/realisation.ts";
import { signRealisation } from "../realisation-view.ts";
import { cacheSecretKey } from "../narinfo-view.ts";
import { realisationFileId } from "./paths.ts";

export function registerRealisationPut(app: FastifyInstance, ctx: AppContext, prefix = ""): void {
  app.put<{ Params: { cache: string; file: string } }>(`${prefix}/:cache/realisations/:file`, async (req, reply) => {
    const id = realisationFileId(req.params.file);
    const { cache } = await requireCache(ctx, req, req.params.cache, "push");
    let r;
    try {
      // Nix sends application/json, which the app has parsed already; other types arrive raw.
      const json = req.body !== undefined ? req.body : (JSON.parse((await readSmallBody(req.raw, ctx.config.maxNarInfoSize, "realisation")).toString("utf8")) as unknown);
      r = parseRealisation(json);
    } catch (e) {
      if (e instanceof SyntaxError) throw badRequest(`the realisation is not JSON: ${e.message}`);
      if (e instanceof NixFormatError) throw badRequest(`invalid realisation: ${e.message}`);
      throw e;
    }
    if (r.id !== id) throw badRequest(`the realisation's id ${JSON.stringify(r.id)} is not the one in the URL (${JSON.stringify(id)})`);
    const ours = cacheSecretKey(cache).name;
    const result = await saveRealisation(ctx.db, {
      cacheId: cache.id,
      drvOutput: r.id,
      outPath: r.outPath,
      dependents: Object.fromEntries(r.dependentRealisations),
      sigs: r.signatures.filter((s) => !s.startsWith(`${ours}:`)),
      signature: signRealisation(cache, r),
      keyVersion: cache.key_version,
    });
    if (result === "conflict") throw new ServerError("Conflict", `This cache already has a different output path for ${r.id}.`);
    ctx.bucketLayout?.realisationVisible(cache, r.id);
    return reply.code(200).type("text/plain").send("");
  });
}
