/**
 * The `uri` a Cachix client is told for a cache, which `cachix use` writes into nix.conf as the
 * substituter and, for a private cache, into netrc as `machine <uri minus scheme>`. Nix (curl)
 * matches netrc entries by host name alone, so for that entry to work the uri must be a bare
 * host: with `cachix-cache-domain` each cache is also served at `<cache>.<domain>`, as Cachix
 * serves `<cache>.cachix.org`, and requests to that host are routed to the cache's own URLs.
 */
import type { FastifyRequest } from "fastify";
import type { IncomingMessage } from "node:http";
import type { Config } from "../config/load.ts";
import { apiEndpoint, substituterEndpoint } from "../http/endpoints.ts";
import { isValidCacheName } from "../auth/permissions.ts";

export function cachixCacheUri(config: Config, req: FastifyRequest, cacheName: string): string {
  const domain = config.cachixCacheDomain;
  if (domain === undefined) return substituterEndpoint(config, req, cacheName);
  // The scheme and port the client reached the API with (no port on https://…:443).
  const api = new URL(apiEndpoint(config, req));
  return `${api.protocol}//${cacheName}.${domain}${api.port === "" ? "" : `:${api.port}`}`;
}

/** The cache a Host header names under `domain`, or undefined. */
export function cacheOfHost(host: string | undefined, domain: string): string | undefined {
  if (host === undefined) return undefined;
  const colon = host.lastIndexOf(":");
  const name = (colon > 0 && !host.endsWith("]") ? host.slice(0, colon) : host).toLowerCase();
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const cache = name.slice(0, -suffix.length);
  return isValidCacheName(cache) && !cache.includes(".") ? cache : undefined;
}

/** Fastify's rewriteUrl: `/<path>` on `<cache>.<domain>` is `/<cache>/<path>`. */
export function cacheHostRewriter(domain: string): (req: IncomingMessage) => string {
  return (req) => {
    const url = req.url ?? "/";
    const cache = cacheOfHost(req.headers.host, domain);
    return cache === undefined ? url : `/${cache}${url}`;
  };
}
