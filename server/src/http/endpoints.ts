/**
 * The public URLs a client is told to use. Without `api-endpoint` in the config they are made
 * from the request's Host and X-Forwarded-Proto, as attic does; attic's client re-targets all
 * API calls to `api_endpoint`, so it must be right behind a proxy.
 */
import type { FastifyRequest } from "fastify";
import type { Config } from "../config/load.ts";
import { PUSH_PREFIX } from "../routes/push-url.ts";

export function apiEndpoint(config: Config, req: FastifyRequest): string {
  if (config.apiEndpoint !== undefined) return config.apiEndpoint;
  const proto = req.headers["x-forwarded-proto"] === "https" ? "https" : "http";
  return `${proto}://${req.headers.host ?? "localhost"}/`;
}

export function substituterEndpoint(config: Config, req: FastifyRequest, cacheName: string): string {
  return `${config.substituterEndpoint ?? apiEndpoint(config, req)}${cacheName}`;
}

/** The URL for `nix copy --to`: on the API endpoint (a substituter endpoint may be a read-only CDN). */
export function nixPushEndpoint(config: Config, req: FastifyRequest, cacheName: string): string {
  return `${apiEndpoint(config, req)}${PUSH_PREFIX.slice(1)}/${cacheName}`;
}
