/**
 * Turns server.toml text plus the process environment (passed in by the entry point; nothing
 * below main.ts reads process.env) into the one typed, frozen Config the server runs on.
 */
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseTomlText } from "../util/toml.ts";
import { z } from "zod";
import { configSchema, type ParsedConfig } from "./schema.ts";
import { DEFAULT_BACKEND, type BackendConfig, type S3Credentials, type StorageConfig, type StorageSetup } from "../storage/types.ts";
import { joinUrl, redactUrl, splitUrl, normalizeUrl } from "./database-url.ts";
import { readSecretFile } from "./secret-file.ts";
import { databaseTls, TlsConfigError, type DatabaseTls } from "./database-tls.ts";

export class ConfigError extends Error {}

export type StoredCompression = "zstd" | "none" | "br" | "xz";

export type JwtKey =
  | { alg: "HS256"; secret: Uint8Array }
  | { alg: "RS256"; privatePem?: string; publicPem?: string };

export interface DatabaseConfig {
  /** sqlite://… or postgres://… with the password (merged from a password file) and the userinfo percent-encoded. */
  url: string;
  /** Where the password is read again when the database refuses it (a rotated credential). */
  passwordSource?: { kind: "password-file" | "url-file"; path: string };
  /** Written when the database refuses the password (28P01), for a secrets agent to refresh it now. */
  authFailureFile?: string;
  /** PostgreSQL over TLS (absent: plain). The URL carries no ssl parameters; this decides. */
  tls?: DatabaseTls;
}

export interface Config {
  listen: { host: string; port: number };
  allowedHosts: string[];
  apiEndpoint?: string;
  substituterEndpoint?: string;
  /** Each cache is also served at `<cache>.<cachixCacheDomain>` (cachix/uri.ts). */
  cachixCacheDomain?: string;
  softDeleteCaches: boolean;
  maxNarInfoSize: number;
  /** Largest uncompressed NAR accepted on upload. */
  maxNarSize: number;
  timeouts: { headersMs: number; bodyIdleMs: number; keepAliveMs: number };
  /** Milliseconds a rendered narinfo answer may be served from memory. */
  narInfoCacheTtlMs: number;
  spoolDir: string;
  /** The same as database.url. */
  databaseUrl: string;
  database: DatabaseConfig;
  /** The first backend's location (the spool directory's default is beside it). */
  storage: StorageConfig;
  /** Every backend and how new objects are placed on them. */
  storageSetup: StorageSetup;
  compression: { type: StoredCompression; level: number };
  gc: { intervalSeconds: number; defaultRetentionSeconds: number; graceSeconds: number; accessFlushSeconds: number };
  buildLogs: { maxBytes: number; retentionSeconds: number };
  /** Where public caches' bucket layouts go; `target` is absent when no bucket is known (local storage, none set). */
  bucketLayout: { prefix: string; target?: BucketTarget; publicUrl?: string };
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

/** `<name>_FILE` of each variable above: the path of a file holding that secret (the preferred form). */
export const ENV_FILE_KEYS = {
  databaseUrl: ENV_KEYS.databaseUrl.map((k) => `${k}_FILE`),
  databasePassword: ["LARDER_SERVER_DATABASE_PASSWORD_FILE"],
  hs256: ENV_KEYS.hs256.map((k) => `${k}_FILE`),
  rs256: ENV_KEYS.rs256.map((k) => `${k}_FILE`),
  rs256pub: ENV_KEYS.rs256pub.map((k) => `${k}_FILE`),
} as const;

const DEFAULT_LEVELS: Record<StoredCompression, number> = { zstd: 3, br: 5, xz: 2, none: 0 };
const LEVEL_RANGES: Record<StoredCompression, [number, number]> = { zstd: [1, 19], br: [0, 11], xz: [0, 9], none: [0, 0] };

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`listen: "${text}" is not HOST:PORT (e.g. "[::]:8080", "127.0.0.1:8080")`);
  return { host: (m[1] ?? m[2]) as string, port };
}

type Env = Record<string, string | undefined>;

function firstSet(env: Env, keys: readonly string[]): string | undefined {
  return keys.find((k) => env[k] !== undefined && env[k] !== "");
}

/** A secret file's path as given, or taken from systemd's credentials directory when relative. */
export function secretPath(path: string, env: Env): string {
  if (isAbsolute(path)) return path;
  const credentials = env.CREDENTIALS_DIRECTORY;
  return credentials ? join(credentials, path) : resolve(path);
}

function readSecret(what: string, path: string, env: Env): { value: string; path: string } {
  const full = secretPath(path, env);
  try {
    return { value: readSecretFile(full), path: full };
  } catch (e) {
    throw new ConfigError(`${what}: ${(e as Error).message}`);
  }
}

interface SecretSpec {
  /** Dotted keys of the inline value and of its file sibling, e.g. "database.url", "database.url-file". */
  key: string;
  fileKey: string;
  inline: string | undefined;
  file: string | undefined;
  /** Variables carrying the value itself, and those naming a file that holds it. */
  envNames?: readonly string[];
  envFileNames?: readonly string[];
}

/**
 * One secret from wherever it was given. server.toml (key or key-file) beats the environment
 * (value or _FILE), as attic does: its NixOS module always writes `database.url`, so an
 * environment left over from elsewhere must not redirect the server. The environment is still
 * checked for contradictions, and giving both forms at one level is refused rather than
 * silently picking one.
 */
function resolveSecret(spec: SecretSpec, env: Env): { value: string; path?: string } | undefined {
  const fromEnv = resolveEnvSecret(spec, env);
  if (spec.inline !== undefined && spec.file !== undefined) throw new ConfigError(`set only one of ${spec.key} and ${spec.fileKey}`);
  if (spec.inline !== undefined) return { value: spec.inline };
  if (spec.file !== undefined) return readSecret(spec.fileKey, spec.file, env);
  return fromEnv?.();
}

/** The environment's form of a secret, read only if it is used. */
function resolveEnvSecret(spec: SecretSpec, env: Env): (() => { value: string; path?: string }) | undefined {
  const direct = spec.envNames ? firstSet(env, spec.envNames) : undefined;
  const fileVar = spec.envFileNames ? firstSet(env, spec.envFileNames) : undefined;
  if (direct !== undefined && fileVar !== undefined) throw new ConfigError(`set only one of the environment variables ${direct} and ${fileVar}`);
  if (direct !== undefined) return () => ({ value: env[direct] as string });
  if (fileVar !== undefined) return () => readSecret(`environment variable ${fileVar}`, env[fileVar] as string, env);
  return undefined;
}

let storageForm: "single" | "several" | undefined;

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const where = path ? ` in [${path}]` : "";
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}${where}`;
  }
  if (issue.code === "invalid_union" && path === "storage") {
    // Say what is wrong in the form the user wrote, not that it matches neither form.
    const branch = storageForm === "several" ? issue.errors[1] : storageForm === "single" ? issue.errors[0] : undefined;
    if (branch && branch.length > 0) return branch.map((i) => describeIssue({ ...i, path: ["storage", ...i.path] } as z.core.$ZodIssue)).join("; ");
    return `storage: set type = "local" or "s3", or list several backends as [[storage.backends]]`;
  }
  return `${path || "config"}: ${issue.message}`;
}

function decodeBase64(name: string, value: string): Buffer {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9+/=\s_-]+$/.test(trimmed)) throw new ConfigError(`${name} is not base64`);
  const bytes = Buffer.from(trimmed, "base64");
  if (bytes.length === 0) throw new ConfigError(`${name} is empty`);
  return bytes;
}

/** attic's order when several signing keys are given: the public key, then RS256, then HS256. */
const SIGNING_KEYS = [
  ["token-rs256-pubkey-base64", "rs256pub"],
  ["token-rs256-secret-base64", "rs256"],
  ["token-hs256-secret-base64", "hs256"],
] as const;

/**
 * The token key, chosen as attic chooses: the first of SIGNING_KEYS set in [jwt.signing]; only
 * if none is, the first set in the environment, in the same order.
 */
function resolveJwtKey(parsed: ParsedConfig, env: Record<string, string | undefined>): JwtKey {
  const signing = parsed.jwt.signing;
  const specs = SIGNING_KEYS.map(([name, which]) => ({
    name,
    key: `jwt.signing.${name}`,
    fileKey: `jwt.signing.${name}-file`,
    inline: signing[name],
    file: signing[`${name}-file`],
    envNames: ENV_KEYS[which],
    envFileNames: ENV_FILE_KEYS[which],
  }));
  const envForms = specs.map((spec) => resolveEnvSecret(spec, env));
  const inFile = specs.find((spec) => spec.inline !== undefined || spec.file !== undefined);
  let chosen: { name: (typeof SIGNING_KEYS)[number][0]; value: string } | undefined;
  if (inFile) {
    const { envNames: _n, envFileNames: _f, ...fileOnly } = inFile;
    chosen = { name: inFile.name, value: (resolveSecret(fileOnly, env) as { value: string }).value };
  } else {
    const i = envForms.findIndex((f) => f !== undefined);
    if (i >= 0) chosen = { name: (specs[i] as (typeof specs)[number]).name, value: (envForms[i] as () => { value: string })().value };
  }
  if (chosen === undefined) {
    throw new ConfigError(
      "no token signing key: set [jwt.signing] token-hs256-secret-base64 (e.g. `openssl rand -base64 64`) " +
        "(or token-hs256-secret-base64-file, a file holding it), or the environment variable LARDER_SERVER_TOKEN_HS256_SECRET_BASE64_FILE",
    );
  }
  if (chosen.name === "token-hs256-secret-base64") {
    const secret = decodeBase64(chosen.name, chosen.value);
    if (secret.length < 32) throw new ConfigError("token-hs256-secret-base64: the secret must be at least 32 bytes");
    return { alg: "HS256", secret };
  }
  if (chosen.name === "token-rs256-secret-base64") {
    const pem = decodeBase64(chosen.name, chosen.value).toString("utf8");
    if (!pem.includes("PRIVATE KEY-----")) throw new ConfigError("token-rs256-secret-base64: not a base64-encoded PEM private key");
    return { alg: "RS256", privatePem: pem };
  }
  const pub = decodeBase64(chosen.name, chosen.value).toString("utf8");
  if (!pub.includes("PUBLIC KEY-----")) throw new ConfigError("token-rs256-pubkey-base64: not a base64-encoded PEM public key");
  return { alg: "RS256", publicPem: pub };
}

export function validateDatabaseUrl(url: string): void {
  if (url.startsWith("sqlite:")) {
    if (sqlitePath(url) === "") throw new ConfigError(`database url "${redactUrl(url)}": missing the file path (sqlite:///var/lib/larder/server.db)`);
    return;
  }
  if (/^postgres(ql)?:\/\//.test(url)) return;
  throw new ConfigError(`database url must start with sqlite:// or postgres:// (got "${redactUrl(url)}")`);
}

function resolveDatabase(p: ParsedConfig, env: Env): DatabaseConfig {
  const given = resolveSecret(
    {
      key: "database.url",
      fileKey: "database.url-file",
      inline: p.database.url,
      file: p.database["url-file"],
      envNames: ENV_KEYS.databaseUrl,
      envFileNames: ENV_FILE_KEYS.databaseUrl,
    },
    env,
  );
  if (given === undefined) {
    throw new ConfigError("[database] url is not set (set url or url-file, or the environment variable LARDER_SERVER_DATABASE_URL_FILE)");
  }
  validateDatabaseUrl(given.value);
  // server.toml before the environment, as for every secret.
  const passwordVar = firstSet(env, ENV_FILE_KEYS.databasePassword);
  const passwordFile =
    p.database["password-file"] !== undefined
      ? { what: "database.password-file", path: p.database["password-file"] }
      : passwordVar !== undefined
        ? { what: `environment variable ${passwordVar}`, path: env[passwordVar] as string }
        : undefined;
  if (given.value.startsWith("sqlite:")) {
    if (passwordFile !== undefined) throw new ConfigError(`${passwordFile.what}: only a postgres:// database takes a password`);
    if (p.database["auth-failure-file"] !== undefined) throw new ConfigError("database.auth-failure-file: only a postgres:// database takes a password");
    if (p.database["ca-file"] !== undefined) throw new ConfigError("database.ca-file: only a postgres:// database uses TLS");
    return { url: given.value };
  }
  let url = normalizeUrl(given.value);
  let passwordSource: DatabaseConfig["passwordSource"] = given.path !== undefined ? { kind: "url-file", path: given.path } : undefined;
  if (passwordFile !== undefined) {
    const parts = splitUrl(given.value);
    if (!parts) throw new ConfigError(`${passwordFile.what}: only a postgres:// database takes a password`);
    if (parts.password !== undefined) throw new ConfigError(`${passwordFile.what}: the database URL already has a password; give it in one place`);
    const password = readSecret(passwordFile.what, passwordFile.path, env);
    url = joinUrl({ ...parts, password: password.value });
    passwordSource = { kind: "password-file", path: password.path };
  }
  let tls: ReturnType<typeof databaseTls>;
  try {
    const caFile = p.database["ca-file"];
    tls = databaseTls(url, caFile === undefined ? undefined : secretPath(caFile, env));
  } catch (e) {
    if (e instanceof TlsConfigError) throw new ConfigError(e.message);
    throw e;
  }
  const authFailureFile = p.database["auth-failure-file"];
  if (authFailureFile !== undefined && passwordSource === undefined) {
    throw new ConfigError("database.auth-failure-file: only with database.password-file or database.url-file (a password larderd reads again)");
  }
  return {
    url: tls.url,
    ...(passwordSource && { passwordSource }),
    ...(authFailureFile !== undefined && { authFailureFile }),
    ...(tls.tls && { tls: tls.tls }),
  };
}

function resolveS3Credentials(c: NonNullable<Extract<ParsedConfig["storage"], { type: "s3" }>["credentials"]>, env: Env, where = "storage.credentials"): S3Credentials {
  const get = (name: "access_key_id" | "secret_access_key" | "session_token") =>
    resolveSecret({ key: `${where}.${name}`, fileKey: `${where}.${name}_file`, inline: c[name], file: c[`${name}_file`] }, env)?.value;
  const accessKeyId = get("access_key_id");
  const secretAccessKey = get("secret_access_key");
  const sessionToken = get("session_token");
  if (accessKeyId === undefined) throw new ConfigError(`${where}: access_key_id (or access_key_id_file) is required`);
  if (secretAccessKey === undefined) throw new ConfigError(`${where}: secret_access_key (or secret_access_key_file) is required`);
  return { accessKeyId, secretAccessKey, ...(sessionToken !== undefined && { sessionToken }) };
}

export interface BucketTarget {
  bucket: string;
  region: string;
  endpoint?: string;
  credentials?: S3Credentials;
}

/** The layout bucket: its own settings, else the storage bucket's (endpoint and credentials too, when the bucket is the same). */
function resolveBucketLayout(p: ParsedConfig, storage: StorageConfig, env: Env): Config["bucketLayout"] {
  const b = p["bucket-layout"];
  const publicUrl = b["public-url"] !== undefined ? { publicUrl: b["public-url"] } : {};
  const fromStorage = storage.type === "s3" && (b.bucket === undefined || b.bucket === storage.bucket) ? storage : undefined;
  const bucket = b.bucket ?? fromStorage?.bucket;
  if (bucket === undefined) {
    if (b.region !== undefined || b.endpoint !== undefined || b.credentials !== undefined) throw new ConfigError("bucket-layout: set bucket (local storage has none to default to)");
    if (b["public-url"] !== undefined) throw new ConfigError("bucket-layout.public-url needs a bucket: set bucket-layout.bucket (local storage has none to default to)");
    return { prefix: b.prefix };
  }
  const region = b.region ?? (storage.type === "s3" ? storage.region : undefined);
  if (region === undefined) throw new ConfigError("bucket-layout.region is required with local storage");
  const endpoint = b.endpoint ?? fromStorage?.endpoint;
  const credentials = b.credentials !== undefined ? resolveS3Credentials(b.credentials, env, "bucket-layout.credentials") : fromStorage?.credentials;
  return { prefix: b.prefix, ...publicUrl, target: { bucket, region, ...(endpoint !== undefined && { endpoint }), ...(credentials !== undefined && { credentials }) } };
}

type ParsedBackend = Extract<ParsedConfig["storage"], { type: string }>;

/** Minimum of storage.retire-after: a presigned URL handed out just before a move stays valid this long. */
export const PRESIGN_SECONDS = 600;

function resolveBackend(b: ParsedBackend, env: Env, at: string, name: string): BackendConfig {
  const storage: StorageConfig =
    b.type === "local"
      ? { type: "local", path: b.path }
      : {
          type: "s3",
          bucket: b.bucket,
          region: b.region,
          ...(b.endpoint !== undefined && { endpoint: b.endpoint }),
          ...(b.prefix !== undefined && { prefix: b.prefix }),
          ...(b.credentials !== undefined && { credentials: resolveS3Credentials(b.credentials, env, `${at}.credentials`) }),
        };
  return {
    name,
    storage,
    ...(b.capacity !== undefined && { capacity: b.capacity }),
    weight: b.weight ?? 1,
    presignDownloads: b.type === "s3" ? b["presign-downloads"] : false,
    ...(b.type === "local" && b["nginx-accel-redirect"] !== undefined && { accelRedirectPrefix: b["nginx-accel-redirect"] }),
  };
}

/** One backend or several, resolved into the one shape the server runs on. */
function resolveStorage(s: ParsedConfig["storage"], env: Env): StorageSetup {
  if ("type" in s) {
    const only = resolveBackend(s, env, "storage", s.name ?? DEFAULT_BACKEND);
    return { backends: [only], placement: { strategy: "in-order", backends: [only.name] }, caches: new Map(), retireAfterSeconds: PRESIGN_SECONDS * 6 };
  }
  const backends: BackendConfig[] = [];
  const names = new Set<string>();
  s.backends.forEach((b, i) => {
    const at = `storage.backends[${i}]`;
    if (b.name === undefined) throw new ConfigError(`${at}: name is required when several backends are listed (the name existing NARs have is "${DEFAULT_BACKEND}")`);
    if (names.has(b.name)) throw new ConfigError(`${at}: backend name "${b.name}" is used twice`);
    names.add(b.name);
    backends.push(resolveBackend(b, env, at, b.name));
  });
  // Two backends in one place would each count (and delete) the other's objects as their own.
  const places = new Map<string, string>();
  for (const b of backends) {
    const where = b.storage.type === "local" ? `local:${resolve(b.storage.path)}` : `s3:${b.storage.endpoint ?? ""}:${b.storage.bucket}/${b.storage.prefix ?? ""}`;
    const other = places.get(where);
    if (other !== undefined) throw new ConfigError(`storage: backends "${other}" and "${b.name}" are the same place; give each its own directory, bucket or prefix`);
    places.set(where, b.name);
  }
  const caches = new Map<string, { strategy: StorageSetup["placement"]["strategy"]; backends: string[] }>();
  for (const [cache, c] of Object.entries(s.caches ?? {})) {
    for (const n of c.backends ?? []) {
      if (!names.has(n)) throw new ConfigError(`storage.caches.${cache}.backends: no backend is named "${n}" (have: ${[...names].join(", ")})`);
    }
    caches.set(cache, { strategy: c.strategy ?? s.strategy, backends: c.backends ?? [...names] });
  }
  if (s["retire-after"] < PRESIGN_SECONDS) throw new ConfigError(`storage.retire-after: must be at least ${PRESIGN_SECONDS / 60} minutes, the lifetime of presigned download URLs`);
  return { backends, placement: { strategy: s.strategy, backends: [...names] }, caches, retireAfterSeconds: s["retire-after"] };
}

/** The file path of a sqlite:// URL ("sqlite:///abs/path.db?mode=rwc" → "/abs/path.db"). */
export function sqlitePath(url: string): string {
  return url.replace(/^sqlite:(\/\/)?/, "").replace(/\?.*$/, "");
}

export function parseConfig(tomlText: string, env: Record<string, string | undefined> = {}): Config {
  let raw: unknown;
  try {
    raw = parseTomlText(tomlText);
  } catch (e) {
    throw new ConfigError(`server.toml is not valid TOML: ${(e as Error).message}`);
  }
  if (raw && typeof raw === "object" && "token-hs256-secret-base64" in raw) {
    throw new ConfigError("token-hs256-secret-base64 belongs under [jwt.signing], not at the top level");
  }
  const result = configSchema.safeParse(raw);
  const rawStorage = (raw as { storage?: unknown } | undefined)?.storage;
  storageForm = rawStorage && typeof rawStorage === "object" ? ("backends" in rawStorage ? "several" : "type" in rawStorage ? "single" : undefined) : undefined;
  if (!result.success) {
    throw new ConfigError(result.error.issues.map(describeIssue).join("; "));
  }
  const p = result.data;
  const database = resolveDatabase(p, env);

  const storageSetup = resolveStorage(p.storage, env);
  const storage = (storageSetup.backends[0] as BackendConfig).storage;
  const type: StoredCompression = p.compression.type === "brotli" ? "br" : p.compression.type;
  const level = p.compression.level ?? DEFAULT_LEVELS[type];
  const [min, max] = LEVEL_RANGES[type];
  if (level < min || level > max) throw new ConfigError(`compression.level: ${level} is outside ${min}..${max} for ${p.compression.type}`);
  const config: Config = {
    listen: parseListen(p.listen),
    allowedHosts: p["allowed-hosts"],
    ...(p["api-endpoint"] !== undefined && { apiEndpoint: p["api-endpoint"] }),
    ...(p["substituter-endpoint"] !== undefined && { substituterEndpoint: p["substituter-endpoint"] }),
    ...(p["cachix-cache-domain"] !== undefined && { cachixCacheDomain: p["cachix-cache-domain"] }),
    softDeleteCaches: p["soft-delete-caches"],
    maxNarInfoSize: p["max-nar-info-size"],
    maxNarSize: p["max-nar-size"],
    timeouts: {
      headersMs: p.timeouts.headers * 1000,
      bodyIdleMs: p.timeouts["body-idle"] * 1000,
      keepAliveMs: p.timeouts["keep-alive"] * 1000,
    },
    narInfoCacheTtlMs: p["narinfo-cache-ttl"] * 1000,
    spoolDir: p["spool-dir"] ?? (storage.type === "local" ? join(dirname(storage.path), "spool") : join(tmpdir(), "larder-spool")),
    databaseUrl: database.url,
    database,
    storage,
    storageSetup,
    compression: { type, level },
    gc: {
      intervalSeconds: p["garbage-collection"].interval,
      defaultRetentionSeconds: p["garbage-collection"]["default-retention-period"],
      graceSeconds: p["garbage-collection"]["grace-period"],
      accessFlushSeconds: p["garbage-collection"]["access-flush-interval"],
    },
    buildLogs: { maxBytes: p["build-logs"]["max-size"], retentionSeconds: p["build-logs"].retention },
    bucketLayout: resolveBucketLayout(p, storage, env),
    jwt: {
      ...(p.jwt["token-bound-issuer"] !== undefined && { issuer: p.jwt["token-bound-issuer"] }),
      ...(p.jwt["token-bound-audiences"] !== undefined && { audiences: p.jwt["token-bound-audiences"] }),
      key: resolveJwtKey(p, env),
    },
    logLevel: p.log.level,
  };
  return Object.freeze(config);
}
