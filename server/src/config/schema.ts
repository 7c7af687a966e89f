/**
 * The one schema of `server.toml`. Key names follow attic's `server.toml` wherever attic has the
 * key, so an attic user can bring theirs; every key has a description (docs/CONFIG.md is checked
 * against this file) and unknown keys are rejected by name.
 */
import { z } from "zod";
import { parseDuration } from "../util/duration.ts";
import { parseSize } from "../util/size.ts";

const duration = (what: string, fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s, ctx) => {
      try {
        return parseDuration(s);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
        return z.NEVER;
      }
    })
    .describe(`${what} A duration such as "12 hours" or "3 months".`);

/**
 * The sibling of a secret key that names a file holding the secret instead (systemd's
 * LoadCredential, agenix, a host's secrets agent). A relative path is taken from
 * $CREDENTIALS_DIRECTORY when systemd sets it.
 */
const secretFile = (key: string, env?: string) =>
  z
    .string()
    .min(1)
    .optional()
    .describe(
      `File holding \`${key}\` instead (one trailing line break is ignored); a relative path is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential). Set only one of the two.${env ? ` Env: ${env}_FILE.` : ""}`,
    );

const endpoint = z
  .string()
  .url()
  .refine((s) => s.endsWith("/"), { message: "must end with '/'" });

export const compressionTypes = ["zstd", "none", "brotli", "xz"] as const;

export const storageStrategies = ["round-robin", "in-order", "split", "least-used"] as const;

/** What every backend may carry besides its own settings (used when several are configured). */
const backendExtras = {
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "1-32 of a-z 0-9 _ -, starting with a letter or digit").optional()
    .describe("The backend's stable name, recorded with every NAR stored on it (default \"default\"; required when several backends are listed). Renaming a backend that holds NARs is `larderd storage rename-backend OLD NEW`; larderd refuses to start while the database names a backend the config lacks."),
  capacity: z.union([z.number().int().nonnegative(), z.string()]).optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      try {
        return parseSize(v);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: (e as Error).message });
        return z.NEVER;
      }
    })
    .describe("Most bytes (compressed, as stored) this backend may hold, e.g. \"500 GB\" or \"2 TiB\"; counted from the database. A backend at capacity takes no new NARs; when none can take one the upload gets 507. Default: unlimited (a full disk is still detected)."),
  weight: z.number().int().positive().optional()
    .describe("Share of new NARs under the split strategy, relative to the other backends' weights (e.g. 70 and 30). Default 1."),
};

const localStorage = z.strictObject({
  type: z.literal("local").describe("Store NARs in a local directory."),
  path: z.string().min(1).describe("Directory that holds the stored NARs."),
  "nginx-accel-redirect": z
    .string()
    .regex(/^\/[A-Za-z0-9._~\/-]*\/$/, "an absolute URL path ending in '/', e.g. \"/_larder-storage/\"")
    .optional()
    .describe("Behind nginx: answer NAR downloads with X-Accel-Redirect to this internal location (an nginx `location … { internal; alias <path>/; }`), so nginx sends the file with sendfile after larder's access check."),
  ...backendExtras,
});

const s3Credentials = z.strictObject({
  access_key_id: z.string().min(1).optional().describe("Access key id (prefer the default AWS credential chain); this or access_key_id_file."),
  access_key_id_file: secretFile("access_key_id"),
  secret_access_key: z.string().min(1).optional().describe("Secret access key; this or secret_access_key_file."),
  secret_access_key_file: secretFile("secret_access_key"),
  session_token: z.string().optional().describe("Session token for temporary credentials."),
  session_token_file: secretFile("session_token"),
}).optional().describe("Static credentials; without them the AWS default chain is used (env, instance role).");

const s3Storage = z.strictObject({
  type: z.literal("s3").describe("Store NARs in an S3 bucket (AWS or S3-compatible)."),
  region: z.string().min(1).describe("AWS region of the bucket (any string for S3-compatible stores)."),
  bucket: z.string().min(1).describe("Bucket name."),
  endpoint: z.string().url().optional().describe("Custom endpoint for S3-compatible stores; implies path-style addressing."),
  prefix: z.string().regex(/^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/, "lowercase path segments without leading or trailing '/'").optional()
    .describe("Key prefix inside the bucket, to share a bucket."),
  "presign-downloads": z.boolean().default(false)
    .describe("Answer NAR downloads with a redirect to a short-lived presigned URL, so bytes bypass the server."),
  credentials: s3Credentials,
  ...backendExtras,
});

const backend = z.discriminatedUnion("type", [localStorage, s3Storage]);
const strategy = z.enum(storageStrategies);

const severalBackends = z.strictObject({
  strategy: strategy.default("round-robin")
    .describe("Which backend takes a new NAR: round-robin (each in turn), in-order (the first until its capacity, then the next), split (by weight), least-used (fewest bytes stored). Full, failing and draining backends are skipped."),
  backends: z.array(backend).min(1)
    .describe("The backends, each a `[[storage.backends]]` table with a unique `name` and the keys of a single local or S3 backend. Every NAR is stored once, on one backend; the database records which."),
  caches: z.record(z.string(), z.strictObject({
    strategy: strategy.optional().describe("This cache's strategy; default: storage.strategy."),
    backends: z.array(z.string()).min(1).optional().describe("Names of the backends this cache's new NARs go to, in order; default: all. A NAR another cache stored already is shared where it is."),
  })).optional()
    .describe("Per-cache placement, keyed by cache name (`[storage.caches.<cache>]`); caches not listed use the server's."),
  "retire-after": duration("After a NAR is moved (`larderd storage drain`/`rebalance`), how long its old copy stays, so presigned URLs already handed out and downloads in flight finish; at least 10 minutes (the presigned URL lifetime).", "1 hour"),
});

export const configSchema = z.strictObject({
  listen: z.string().default("[::]:8080").describe("Address and port to listen on, e.g. \"[::]:8080\" or \"127.0.0.1:8080\"."),
  "allowed-hosts": z.array(z.string()).default([])
    .describe("Host headers that are accepted; empty accepts any. Set it in production."),
  "api-endpoint": endpoint.optional()
    .describe("Public URL of this server, ending in '/'. Without it, it is derived from Host and X-Forwarded-Proto."),
  "substituter-endpoint": endpoint.optional()
    .describe("Public URL that substituters use, ending in '/'; defaults to api-endpoint."),
  "cachix-cache-domain": z
    .string()
    .regex(/^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a lowercase DNS name such as \"cachix.example.com\"")
    .optional()
    .describe(
      "Also serve each cache at its own host, `<cache>.<this domain>` (needs wildcard DNS and a wildcard certificate), and give that host to the Cachix client as the cache's `uri`. `cachix use` on a private cache writes a netrc entry for the uri minus its scheme, which Nix matches by host name only; without this key the uri is the cache's substituter URL, whose path keeps that entry from matching (public caches work either way). docs/CACHIX.md.",
    ),
  "soft-delete-caches": z.boolean().default(false)
    .describe("Keep destroyed caches' rows (name stays taken) instead of deleting them."),
  "require-proof-of-possession": z.boolean().default(true)
    .describe("A push of a NAR the server already has must still send its bytes (accepted for attic compatibility; larder always verifies)."),
  "spool-dir": z.string().min(1).optional()
    .describe("Scratch directory for uploads in flight (compressed size); default: beside local storage, or the system temp dir with S3."),
  "narinfo-cache-ttl": duration("How long a rendered narinfo answer (hit or miss) is served from memory; writes through the same process are seen at once, other processes' within this time; \"0s\" turns the cache off.", "1s"),
  "max-nar-info-size": z.number().int().positive().default(1_048_576)
    .describe("Largest narinfo or attic upload preamble accepted, in bytes."),
  "max-nar-size": z.number().int().positive().default(64 * 1024 ** 3)
    .describe("Largest NAR (uncompressed) accepted on upload, in bytes; bigger ones get 413 and decompression stops at the limit. Default 64 GiB."),
  timeouts: z.strictObject({
    headers: duration("Time a client has to send a request's line and headers; slower connections are closed.", "30s"),
    "body-idle": duration("Longest pause while a request body is arriving; a connection that sends nothing for this long is closed.", "60s"),
    "keep-alive": duration("How long an idle keep-alive connection stays open between requests.", "75s"),
  }).prefault({}).describe("Connection timeouts, so clients that stop sending cannot hold connections and memory."),
  database: z.strictObject({
    url: z.string().optional().describe("sqlite://PATH or postgres://…. Env LARDER_SERVER_DATABASE_URL (or ATTIC_SERVER_DATABASE_URL) is used only when neither url nor url-file is set, as in attic."),
    "url-file": secretFile("url", "LARDER_SERVER_DATABASE_URL"),
    "password-file": z.string().min(1).optional()
      .describe("PostgreSQL only: file holding just the password (e.g. an RDS-managed secret's password), merged into the URL, which then has none. Read again for every new connection, so a rotated password is picked up without a restart; a relative path is looked up in $CREDENTIALS_DIRECTORY. Env: LARDER_SERVER_DATABASE_PASSWORD_FILE."),
    "ca-file": z.string().min(1).optional()
      .describe("PostgreSQL only: PEM file of the certificate authorities that sign the server's certificate (for RDS, the RDS CA bundle); with it TLS is on and verified. TLS follows the URL's sslmode: disable (plain), require or verify-full (certificate chain and host name checked; libpq's require is taken as verify-full, as are prefer and allow), verify-ca (chain only), no-verify (encrypted but unchecked: only when written out). Without sslmode, TLS is on exactly when ca-file (or the URL's sslrootcert) is given. Without ca-file, Node's roots and NODE_EXTRA_CA_CERTS are trusted."),
    "auth-failure-file": z.string().min(1).optional()
      .describe("PostgreSQL with password-file or url-file only: a file larderd writes (the time, at most every 30 s) when the database refuses the password of a new connection (28P01), so a secrets agent watching it can fetch a rotated password at once instead of at its next scheduled run (the EC2 host profile does, with a systemd path unit). Its directory must be writable by larderd."),
    heartbeat: z.boolean().default(false).describe("Accepted for attic compatibility; larder's pool checks connections itself."),
  }).default({ heartbeat: false }).describe("The metadata database."),
  storage: z.union([backend, severalBackends])
    .describe("Where NARs are stored: one backend (`type = \"local\"` or `\"s3\"` here), or several as `[[storage.backends]]` with a `strategy`."),
  chunking: z.strictObject({
    "nar-size-threshold": z.number().int().nonnegative().describe("Accepted for attic compatibility; larder stores whole NARs."),
    "min-size": z.number().int().nonnegative().describe("Accepted for attic compatibility; unused."),
    "avg-size": z.number().int().nonnegative().describe("Accepted for attic compatibility; unused."),
    "max-size": z.number().int().nonnegative().describe("Accepted for attic compatibility; unused."),
  }).optional().describe("attic's chunking settings: accepted so attic configs load, ignored (whole NARs are stored)."),
  compression: z.strictObject({
    type: z.enum(compressionTypes).default("zstd").describe("Compression of stored NARs: zstd, none, brotli or xz."),
    level: z.number().int().optional().describe("Compression level; default zstd 3, brotli 5, xz 2."),
  }).default({ type: "zstd" }).describe("How NARs are compressed once, at ingest."),
  "garbage-collection": z.strictObject({
    interval: duration("Time between periodic GC runs; \"0s\" disables periodic GC.", "12 hours"),
    "default-retention-period": duration("Retention of caches without their own period, from the later of push and last access; \"0s\" keeps forever.", "0s"),
    "grace-period": duration("Age below which unreferenced NARs and staged uploads are never collected (protects uploads in flight).", "6 hours"),
    "access-flush-interval": duration("How often each server writes the access times of its narinfo and NAR hits to the database, where retention reads them (at least \"1s\"). A GC run that finds paths past retention first waits twice this long, so hits that other processes have not written yet still count; give every process the same value.", "10s")
      .refine((s) => s >= 1, { message: "must be at least 1s" }),
  }).prefault({}).describe("Garbage collection."),
  "bucket-layout": z.strictObject({
    prefix: z.string().regex(/^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/, "lowercase path segments without leading or trailing '/'").default("public")
      .describe("Key prefix of the layouts: cache `main` is kept under `<prefix>/main/`. A CDN in front of the bucket uses `/<prefix>` as its origin path, so clients substitute from `https://<cdn>/main`."),
    bucket: z.string().min(1).optional().describe("Bucket of the layouts; default: the storage bucket (S3 storage). Needed with local storage."),
    region: z.string().min(1).optional().describe("Region of `bucket`; default: the storage's."),
    endpoint: z.string().url().optional().describe("Custom endpoint of `bucket` (S3-compatible stores); default: the storage's when the bucket is the storage's."),
    credentials: s3Credentials,
    "public-url": endpoint.optional()
      .describe("Where clients read the layouts (the CDN in front of `<prefix>/`, or the bucket's own URL followed by `<prefix>/`), ending in '/'; the cache config API then answers `bucket_endpoint` = this URL + the cache name."),
  }).prefault({}).describe("Public caches readable straight from the bucket: caches configured with `bucket_layout` get a standard Nix binary-cache layout (nix-cache-info, signed narinfos, NARs, listings, build logs, realisations) in this bucket, kept by larder (docs/BUCKET.md)."),
  "build-logs": z.strictObject({
    "max-size": z.number().int().positive().default(64 * 1024 * 1024)
      .describe("Largest build log accepted, in bytes after any Content-Encoding is undone; a larger upload is refused with 413."),
    retention: duration("How long a build log is kept from its upload; \"0s\" keeps it as long as an output of its derivation stays in the cache. Either way a log goes when the last such output does (after the grace period).", "0s"),
  }).prefault({}).describe("Build logs (`nix store copy-log --to`, `larder push --logs`)."),
  jwt: z.strictObject({
    "token-bound-issuer": z.string().optional().describe("Required `iss` of tokens; set on minted tokens."),
    "token-bound-audiences": z.array(z.string()).optional().describe("Accepted `aud` values; the first is set on minted tokens."),
    signing: z.strictObject({
      "token-hs256-secret-base64": z.string().optional().describe("HS256 secret, base64. Env: LARDER_SERVER_TOKEN_HS256_SECRET_BASE64."),
      "token-hs256-secret-base64-file": secretFile("token-hs256-secret-base64", "LARDER_SERVER_TOKEN_HS256_SECRET_BASE64"),
      "token-rs256-secret-base64": z.string().optional().describe("RS256 private key (PEM), base64. Env: LARDER_SERVER_TOKEN_RS256_SECRET_BASE64."),
      "token-rs256-secret-base64-file": secretFile("token-rs256-secret-base64", "LARDER_SERVER_TOKEN_RS256_SECRET_BASE64"),
      "token-rs256-pubkey-base64": z.string().optional().describe("RS256 public key (PEM), base64: verify only. Env: LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64."),
      "token-rs256-pubkey-base64-file": secretFile("token-rs256-pubkey-base64", "LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64"),
    }).default({}).describe("Token signing key. When several are set, attic's order picks one: the RS256 public key, then the RS256 private key, then the HS256 secret; the environment variables (same order) are used only when none is set here."),
  }).default({ signing: {} }).describe("Token verification."),
  log: z.strictObject({
    level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info").describe("Log level."),
  }).default({ level: "info" }).describe("Logging (JSON lines on stdout)."),
});

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
