/**
 * The HTTP side of the client, speaking attic's wire format as attic's client does
 * (`Authorization: bearer …`, JSON bodies, endpoint joined onto a base ending in "/"). Network
 * errors and 5xx answers are retried with exponential backoff; 4xx answers are turned into one
 * line that says what to do.
 */
import http from "node:http";
import { LARDER } from "../util/invocation.ts";
import https from "node:https";
import type { Readable } from "node:stream";
import type { ResolvedServer } from "./config.ts";
import { CliError } from "./errors.ts";

export const USER_AGENT = "larder/0.1.0";

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 500 };

/** A failure worth trying again: the network, or the server said 5xx/429. */
export class TransientError extends Error {}

interface ErrorBody {
  code?: number;
  error?: string;
  message?: string;
}

const NETWORK_CODES = new Map<string, string>(Object.entries({
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "DNS lookup failed",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EPIPE: "connection closed while sending",
  UND_ERR_SOCKET: "connection closed",
}));

/** Whether the failure is TLS meeting a server that answered in plain HTTP (an https:// URL for an http server). */
function isPlainHttpBehindTls(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: string }).code;
    const message = cur instanceof Error ? cur.message : "";
    if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG" || /wrong version number|packet length too long/i.test(message)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

function networkReason(e: unknown): string | undefined {
  if (isPlainHttpBehindTls(e)) return "the server answered in plain HTTP, not TLS";
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: string }).code;
    const known = code === undefined ? undefined : NETWORK_CODES.get(code);
    if (code && known) return `${known} (${code})`;
    if (code && /^E[A-Z]+$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  if (e instanceof Error && /socket hang up|other side closed/i.test(e.message)) return "connection closed by the server";
  return undefined;
}

function deepestMessage(e: unknown): string {
  let cur = e;
  while ((cur as { cause?: unknown })?.cause) cur = (cur as { cause?: unknown }).cause;
  return cur instanceof Error ? cur.message : String(cur);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return policy.baseDelayMs * 2 ** attempt * (0.75 + Math.random() * 0.5);
}

export class Api {
  readonly server: ResolvedServer;
  base: string;
  readonly retry: RetryPolicy;
  /** What the request is about, for error messages ("cache \"main\""). */
  context = "";

  constructor(server: ResolvedServer, retry: RetryPolicy = DEFAULT_RETRY) {
    this.server = server;
    this.base = server.endpoint;
    this.retry = retry;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      "user-agent": USER_AGENT,
      ...(this.server.token !== undefined && this.server.token !== "" && { authorization: `bearer ${this.server.token}` }),
      ...extra,
    };
  }

  url(path: string): string {
    return new URL(path, this.base).href;
  }

  unreachable(e: unknown): CliError {
    if (isPlainHttpBehindTls(e) && this.base.startsWith("https:")) {
      const plain = this.base.replace(/^https:/, "http:");
      return new CliError(`cannot reach server "${this.server.name}" at ${this.base}: it speaks plain HTTP, not https; use ${plain} (${LARDER} login ${this.server.name} ${plain}${this.server.token ? " TOKEN" : ""}), or put TLS in front of it`);
    }
    const reason = networkReason(e) ?? deepestMessage(e);
    return new CliError(`cannot reach server "${this.server.name}" at ${this.base}: ${reason}; check the URL (${LARDER} login) and that the server is running`);
  }

  /** A 401, explained from the server's reason (larder says which; attic only "Unauthorized."). */
  unauthorized(message: string, what: string): CliError {
    const on = `server "${this.server.name}"`;
    const login = `${LARDER} login ${this.server.name} ${this.server.endpoint} TOKEN`;
    const reason = message.replace(/^Unauthorized:?\s*/, "").replace(/\.$/, "");
    if (!this.server.token || reason === "no token sent") {
      return new CliError(`${what}: ${on} needs a token${this.context ? ` for ${this.context}` : ""} and none is configured; log in with: ${login}`);
    }
    if (/^this token grants/.test(reason)) {
      return new CliError(`${what}: the token of ${on} does not cover ${this.context || "this cache"}: ${reason.replace(/^this token /, "it ")}; use a cache it covers, or log in with a token that covers this one: ${login}`);
    }
    if (reason !== "") return new CliError(`${what}: ${on} refused the token: ${reason}; log in with a new one: ${login}`);
    return new CliError(`${what}: not authorized on ${on}${this.context ? ` for ${this.context}` : ""} (the token is wrong, expired or revoked, or has no rights on it); log in again with: ${login}`);
  }

  /** Turns a non-2xx answer into what the user should know and do. */
  refusal(status: number, text: string, what: string): Error {
    let body: ErrorBody = {};
    try {
      body = JSON.parse(text) as ErrorBody;
    } catch {
      // Not attic's JSON (a proxy's page): keep the first line.
      body = { message: text.split("\n")[0]?.slice(0, 200) };
    }
    const said = body.message ? `: ${body.message}` : "";
    const on = `server "${this.server.name}"`;
    if (status >= 500 || status === 429) return new TransientError(`${what} failed: ${on} answered ${status}${said}`);
    if (status === 401) return this.unauthorized(body.message ?? "", what);
    if (status === 403) return new CliError(`${what}: permission denied${said.replace(/^: Access error:/, ":")}`);
    if (body.error === "NoSuchCache") return new CliError(`${what}: ${this.context || "the cache"} does not exist on ${on}; create it with: ${LARDER} cache create ${this.context.replace(/^cache "(.*)"$/, "$1")}`);
    if (status === 404 && body.error === "NotFound") return new CliError(`${what}: ${on} does not know this API (${status}); is ${this.base} a larder or attic server?`);
    return new CliError(`${what}: ${on} refused the request (${status} ${body.error ?? ""})${said}`);
  }

  /** One JSON request, retried on network errors and 5xx. */
  async json<T>(method: string, path: string, body: unknown, what: string): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.url(path), {
          method,
          headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
          ...(body !== undefined && { body: JSON.stringify(body) }),
        });
      } catch (e) {
        // TLS against a plain-HTTP server fails the same way every time.
        if (attempt + 1 < this.retry.attempts && !isPlainHttpBehindTls(e)) {
          await sleep(backoffMs(this.retry, attempt));
          continue;
        }
        throw this.unreachable(e);
      }
      const text = await res.text();
      if (res.ok) {
        if (text === "") return undefined;
        try {
          return JSON.parse(text) as T;
        } catch {
          return undefined;
        }
      }
      const err = this.refusal(res.status, text, what);
      if (err instanceof TransientError && attempt + 1 < this.retry.attempts) {
        await sleep(backoffMs(this.retry, attempt));
        continue;
      }
      throw err instanceof TransientError ? new CliError(`${err.message} (after ${attempt + 1} attempts)`) : err;
    }
  }

  /**
   * One streaming PUT with a body of unknown length (chunked), not retried here: the caller
   * makes a fresh body for each attempt.
   */
  put(path: string, headers: Record<string, string>, body: Readable, onBytes: (n: number) => void): Promise<{ status: number; text: string }> {
    const url = new URL(path, this.base);
    const mod = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: "PUT", headers: this.headers(headers) }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (d: Buffer) => parts.push(d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", (e) => {
        body.destroy();
        reject(e);
      });
      body.on("data", (d: Buffer) => onBytes(d.length));
      body.on("error", (e) => req.destroy(e));
      body.pipe(req);
    });
  }

  isNetworkError(e: unknown): boolean {
    return networkReason(e) !== undefined;
  }
}

export interface CacheConfig {
  substituter_endpoint?: string;
  nix_push_endpoint?: string;
  api_endpoint?: string;
  public_key?: string;
  is_public?: boolean;
  store_dir?: string;
  priority?: number;
  upstream_cache_key_names?: string[];
  retention_period?: "Global" | { Period: number };
  /** larder: upload-path takes zstd NAR bodies, stored as sent at this level. */
  upload_zstd_level?: number;
  /** larder: the cache has a layout in the bucket, read at bucket_endpoint (when the server knows it). */
  bucket_layout?: boolean;
  bucket_endpoint?: string;
}

export async function getCacheConfig(api: Api, cache: string): Promise<CacheConfig> {
  api.context = `cache "${cache}"`;
  const cfg = await api.json<CacheConfig>("GET", `_api/v1/cache-config/${cache}`, undefined, `reading the configuration of cache "${cache}"`);
  return cfg ?? {};
}
