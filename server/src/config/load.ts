/**
 * Turns server.toml text plus the process environment (passed in by the entry point; nothing
 * below main.ts reads process.env) into the one typed, frozen Config the server runs on.
 */
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { configSchema, type ParsedConfig } from "./schema.ts";
import type { StorageConfig } from "../storage/types.ts";

export class ConfigError extends Error {}

export type StoredCompression = "zstd" | "none" | "br" | "xz";

export type JwtKey =
  | { alg: "HS256"; secret: Uint8Array }
  | { alg: "RS256"; privatePem?: string; publicPem?: string };

export interface Config {
  listen: { host: string; port: number };
  allowedHosts: string[];
  apiEndpoint?: string;
  substituterEndpoint?: string;
  softDeleteCaches: boolean;
  maxNarInfoSize: number;
  /** Milliseconds a rendered narinfo answer may be served from memory. */
  narInfoCacheTtlMs: number;
  spoolDir: string;
  databaseUrl: string;
  storage: StorageConfig;
  presignDownloads: boolean;
  /** Local storage behind nginx: URL prefix of the internal location that serves the storage directory. */
  accelRedirectPrefix?: string;
  compression: { type: StoredCompression; level: number };
  gc: { intervalSeconds: number; defaultRetentionSeconds: number; graceSeconds: number };
  jwt: { issuer?: string; audiences?: string[]; key: JwtKey };
  logLevel: ParsedConfig["log"]["level"];
}

/** Environment variables that may carry secrets instead of the file (so they stay out of a Nix store). */
export const ENV_KEYS = {
  databaseUrl: ["LARDER_SERVER_DATABASE_URL", "ATTIC_SERVER_DATABASE_URL"],
  hs256: ["LARDER_SERVER_TOKEN_HS256_SECRET_BASE64", "ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64"],
  rs256: ["LARDER_SERVER_TOKEN_RS256_SECRET_BASE64", "ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64"],
  rs256pub: ["LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64", "ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64"],
} as const;

const DEFAULT_LEVELS: Record<StoredCompression, number> = { zstd: 3, br: 5, xz: 2, none: 0 };
const LEVEL_RANGES: Record<StoredCompression, [number, number]> = { zstd: [1, 19], br: [0, 11], xz: [0, 9], none: [0, 0] };

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen: "${text}" is not HOST:PORT (e.g. "[::]:8080", "127.0.0.1:8080")`);
  return { host: (m[1] ?? m[2]) as string, port };
}

function fromEnv(env: Record<string, string | undefined>, keys: readonly string[]): string | undefined {
  for (const k of keys) {
    const v = env[k];
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const where = path ? ` in [${path}]` : "";
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}${where}`;
  }
  if (issue.code === "invalid_union" && path === "storage") return `storage: type must be "local" or "s3"`;
  return `${path || "config"}: ${issue.message}`;
}

function decodeBase64(name: string, value: string): Buffer {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9+/=\s_-]+$/.test(trimmed)) throw new ConfigError(`${name} is not base64`);
  const bytes = Buffer.from(trimmed, "base64");
  if (bytes.length === 0) throw new ConfigError(`${name} is empty`);
  return bytes;
}

function resolveJwtKey(parsed: ParsedConfig, env: Record<string, string | undefined>): JwtKey {
  const signing = parsed.jwt.signing;
  const hs = fromEnv(env, ENV_KEYS.hs256) ?? signing["token-hs256-secret-base64"];
  const rs = fromEnv(env, ENV_KEYS.rs256) ?? signing["token-rs256-secret-base64"];
  const rsPub = fromEnv(env, ENV_KEYS.rs256pub) ?? signing["token-rs256-pubkey-base64"];
  const given = [hs, rs, rsPub].filter((v) => v !== undefined).length;
  if (given === 0) {
    throw new ConfigError(
      "no token signing key: set [jwt.signing] token-hs256-secret-base64 (e.g. `openssl rand -base64 64`) " +
        "or the environment variable LARDER_SERVER_TOKEN_HS256_SECRET_BASE64",
    );
  }
  if (given > 1) throw new ConfigError("[jwt.signing]: set exactly one of token-hs256-secret-base64, token-rs256-secret-base64, token-rs256-pubkey-base64");
  if (hs !== undefined) {
    const secret = decodeBase64("token-hs256-secret-base64", hs);
    if (secret.length < 32) throw new ConfigError("token-hs256-secret-base64: the secret must be at least 32 bytes");
    return { alg: "HS256", secret };
  }
  if (rs !== undefined) {
    const pem = decodeBase64("token-rs256-secret-base64", rs).toString("utf8");
    if (!pem.includes("PRIVATE KEY-----")) throw new ConfigError("token-rs256-secret-base64: not a base64-encoded PEM private key");
    return { alg: "RS256", privatePem: pem };
  }
  const pub = decodeBase64("token-rs256-pubkey-base64", rsPub as string).toString("utf8");
  if (!pub.includes("PUBLIC KEY-----")) throw new ConfigError("token-rs256-pubkey-base64: not a base64-encoded PEM public key");
  return { alg: "RS256", publicPem: pub };
}

export function validateDatabaseUrl(url: string): void {
  if (url.startsWith("sqlite:")) {
    if (sqlitePath(url) === "") throw new ConfigError(`database url "${url}": missing the file path (sqlite:///var/lib/larder/server.db)`);
    return;
  }
  if (/^postgres(ql)?:\/\//.test(url)) return;
  throw new ConfigError(`database url must start with sqlite:// or postgres:// (got "${url.replace(/\/\/[^@/]*@/, "//…@")}")`);
}

/** The file path of a sqlite:// URL ("sqlite:///abs/path.db?mode=rwc" → "/abs/path.db"). */
export function sqlitePath(url: string): string {
  return url.replace(/^sqlite:(\/\/)?/, "").replace(/\?.*$/, "");
}

export function parseConfig(tomlText: string, env: Record<string, string | undefined> = {}): Config {
  let raw: unknown;
  try {
    raw = parseToml(tomlText);
  } catch (e) {
    throw new ConfigError(`server.toml is not valid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (raw && typeof raw === "object" && "token-hs256-secret-base64" in raw) {
    throw new ConfigError("token-hs256-secret-base64 belongs under [jwt.signing], not at the top level");
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map(describeIssue).join("; "));
  }
  const p = result.data;
  const databaseUrl = fromEnv(env, ENV_KEYS.databaseUrl) ?? p.database.url;
  if (databaseUrl === undefined) throw new ConfigError("[database] url is not set (or set LARDER_SERVER_DATABASE_URL)");
  validateDatabaseUrl(databaseUrl);

  const s = p.storage;
  const storage: StorageConfig =
    s.type === "local"
      ? { type: "local", path: s.path }
      : {
          type: "s3",
          bucket: s.bucket,
          region: s.region,
          ...(s.endpoint !== undefined && { endpoint: s.endpoint }),
          ...(s.prefix !== undefined && { prefix: s.prefix }),
          ...(s.credentials !== undefined && {
            credentials: {
              accessKeyId: s.credentials.access_key_id,
              secretAccessKey: s.credentials.secret_access_key,
              ...(s.credentials.session_token !== undefined && { sessionToken: s.credentials.session_token }),
            },
          }),
        };
  const type: StoredCompression = p.compression.type === "brotli" ? "br" : p.compression.type;
  const level = p.compression.level ?? DEFAULT_LEVELS[type];
  const [min, max] = LEVEL_RANGES[type];
  if (level < min || level > max) throw new ConfigError(`compression.level: ${level} is outside ${min}..${max} for ${p.compression.type}`);
  const config: Config = {
    listen: parseListen(p.listen),
    allowedHosts: p["allowed-hosts"],
    ...(p["api-endpoint"] !== undefined && { apiEndpoint: p["api-endpoint"] }),
    ...(p["substituter-endpoint"] !== undefined && { substituterEndpoint: p["substituter-endpoint"] }),
    softDeleteCaches: p["soft-delete-caches"],
    maxNarInfoSize: p["max-nar-info-size"],
    narInfoCacheTtlMs: p["narinfo-cache-ttl"] * 1000,
    spoolDir: p["spool-dir"] ?? (storage.type === "local" ? join(dirname(storage.path), "spool") : join(tmpdir(), "larder-spool")),
    databaseUrl,
    storage,
    presignDownloads: s.type === "s3" ? s["presign-downloads"] : false,
    ...(s.type === "local" && s["nginx-accel-redirect"] !== undefined && { accelRedirectPrefix: s["nginx-accel-redirect"] }),
    compression: { type, level },
    gc: {
      intervalSeconds: p["garbage-collection"].interval,
      defaultRetentionSeconds: p["garbage-collection"]["default-retention-period"],
      graceSeconds: p["garbage-collection"]["grace-period"],
    },
    jwt: {
      ...(p.jwt["token-bound-issuer"] !== undefined && { issuer: p.jwt["token-bound-issuer"] }),
      ...(p.jwt["token-bound-audiences"] !== undefined && { audiences: p.jwt["token-bound-audiences"] }),
      key: resolveJwtKey(p, env),
    },
    logLevel: p.log.level,
  };
  return Object.freeze(config);
}
