/** The `uri` a Cachix client is told for a cache: the substituter `cachix use` writes into nix.conf. */
import type { FastifyRequest } from "fastify";
import type { Config } from "../config/load.ts";
import { substituterEndpoint } from "../http/endpoints.ts";

export function cachixCacheUri(config: Config, req: FastifyRequest, cacheName: string): string {
  return substituterEndpoint(config, req, cacheName);
}
