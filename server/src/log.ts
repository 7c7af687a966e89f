/**
 * Secrets never reach a log line (invariant 5), whatever a call site passes: every logger the
 * server and GC use is wrapped here, and every value of every line goes through `scrub` before
 * it is written. Call sites need not remember anything; a new `{ url }` or `{ headers }` field is
 * covered by construction.
 *
 * What counts as a secret: tokens (JWTs, wherever they appear: a `?token=` query, an
 * `Authorization` or any other header, an error message), credentials in URLs
 * (`postgres://user:password@host`), the values of query parameters and object keys whose names
 * say secret (token, password, key, signature, credential, cookie, authorization).
 */
import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import { redactUrlsIn } from "./config/database-url.ts";

const REDACTED = "[redacted]";
// A JWS/JWT in compact form: base64url of a JSON header (`{"` → `eyJ`), payload, signature.
const JWT_RE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
// An HTTP credential as it appears in a header value.
const AUTH_SCHEME_RE = /\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi;
// Query parameters whose names say secret.
const SECRET_PARAM_RE = /([?&;](?:[^=&\s]*(?:token|secret|password|passwd|pwd|key|sig|signature|credential|auth)[^=&\s]*)=)[^&#\s]*/gi;
const SECRET_KEY_RE = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|token|access_token|refresh_token|id_token|password|passwd|secret|client_secret|credentials?)$/i;

export function scrubString(s: string): string {
  if (s.length < 8) return s;
  return redactUrlsIn(s)
    .replace(JWT_RE, REDACTED)
    .replace(AUTH_SCHEME_RE, `$1$2${REDACTED}`)
    .replace(SECRET_PARAM_RE, `$1${REDACTED}`);
}

const MAX_DEPTH = 6;

/** A copy of `value` with every secret replaced; Errors become pino's serialized form first. */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrubString(value);
  if (typeof value !== "object" || value === null) return value;
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (value instanceof Error) return scrub(pino.stdSerializers.err(value), depth);
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: a "__proto__" key stays data.
    Object.defineProperty(out, k, { value: SECRET_KEY_RE.test(k) && v !== undefined && v !== null ? REDACTED : scrub(v, depth + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const scrubbing = {
  formatters: { log: (obj: object) => scrub(obj) as Record<string, unknown> },
  // formatters.log already made errors plain; these catch bindings and child serializers.
  serializers: { err: (e: unknown) => scrub(e), error: (e: unknown) => scrub(e) },
};

/** The same logger, with every line's fields scrubbed (messages are constant text by convention, and scrubbed too). */
export function redacting(log: Logger): Logger {
  return log.child({}, scrubbing);
}

/** A new scrubbing logger: fields and messages. */
export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  const opts: LoggerOptions = {
    ...options,
    ...scrubbing,
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === "string" ? scrubString(a) : a)) as Parameters<typeof method>;
        return method.apply(this, scrubbed);
      },
    },
  };
  return destination ? pino(opts, destination) : pino(opts);
}
