import { NIX_CACHE_INFO_TYPE } from "../routes/nix-cache-info.ts";

/** Names and texts of a bucket layout: the keys Nix's HTTP binary-cache store reads, relative to the cache's prefix. */
/** `public/main/`: where cache `main`'s layout lives under the configured prefix. */
export function layoutPrefix(configPrefix: string, cacheName: string): string {
  return `${configPrefix}/${cacheName}/`;
}

export const INFO_KEY = "nix-cache-info";
export const narinfoKey = (storePathHash: string) => `${storePathHash}.narinfo`;
export const listingKey = (storePathHash: string) => `${storePathHash}.ls`;
export const logKey = (drvName: string) => `log/${drvName}`;
export const realisationKey = (drvOutput: string) => `realisations/${drvOutput}.doi`;

export const CONTENT_TYPES = {
  info: NIX_CACHE_INFO_TYPE,
  narinfo: "text/x-nix-narinfo",
  nar: "application/x-nix-nar",
  listing: "application/json",
  log: "text/plain; charset=utf-8",
  realisation: "application/json",
} as const;
