/** Starts real larderd servers for tests, on SQLite + local disk or PostgreSQL + s3rver. */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { parseConfig, type Config } from "../../src/config/load.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { buildClaims, signClaims } from "../../src/auth/tokens.ts";
import type { PermissionName } from "../../src/auth/permissions.ts";
import { globalPostgres } from "./postgres.ts";
import { startS3rver, type S3rverHandle } from "./s3rver.ts";
import { makeTempDir, type TempDir } from "./tmp.ts";
import { pino } from "pino";

export type Backend = "sqlite-local" | "postgres-s3";
export const BACKENDS: Backend[] = ["sqlite-local", "postgres-s3"];

export interface Larder {
  url: string;
  server: RunningServer;
  config: Config;
  toml: string;
  dir: TempDir;
  s3?: S3rverHandle;
  token(grants: Partial<Record<PermissionName, string[]>>, sub?: string, validitySeconds?: number): Promise<string>;
  rootToken: string;
  /** Stops and starts the server again on the same config, database and storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export const ALL_PERMISSIONS = (pattern = "*"): Partial<Record<PermissionName, string[]>> => ({
  pull: [pattern], push: [pattern], delete: [pattern], createCache: [pattern], configureCache: [pattern], configureCacheRetention: [pattern], destroyCache: [pattern],
});

export interface LarderOptions {
  extraToml?: string;
  /** Local storage only: `nginx-accel-redirect` prefix. */
  accelRedirect?: string;
  /** S3 only: answer NAR downloads with redirects to presigned URLs. */
  presign?: boolean;
  /** Receives the server's JSON log lines. */
  logLines?: string[];
  compression?: "zstd" | "none" | "xz" | "brotli";
  /** How long narinfo answers are kept in memory (the server's default when unset). */
  narInfoTtlMs?: number;
  /** Where uploads are spooled (default: a directory in the test's temp dir). */
  spoolDir?: string;
  /** Local storage only: where NARs are stored (default: a directory in the test's temp dir). */
  storageDir?: string;
}

export async function startLarder(backend: Backend, opts: LarderOptions = {}): Promise<Larder> {
  const dir = await makeTempDir(`larder-${backend}`);
  let s3: S3rverHandle | undefined;
  let databaseUrl: string;
  let storageToml: string;
  if (backend === "sqlite-local") {
    databaseUrl = `sqlite://${join(dir.path, "server.db")}`;
    storageToml = `[storage]\ntype = "local"\npath = ${JSON.stringify(opts.storageDir ?? join(dir.path, "storage"))}\n`;
    if (opts.accelRedirect !== undefined) storageToml += `nginx-accel-redirect = "${opts.accelRedirect}"\n`;
  } else {
    databaseUrl = await globalPostgres().createDatabase();
    s3 = await startS3rver();
    storageToml = `[storage]\ntype = "s3"\nregion = "${s3.region}"\nbucket = "${s3.bucket}"\nendpoint = "${s3.endpoint}"\n[storage.credentials]\naccess_key_id = "${s3.credentials.accessKeyId}"\nsecret_access_key = "${s3.credentials.secretAccessKey}"\n`;
    if (opts.presign) {
      // Nix sends its netrc password to every URL on the same host name, and S3 refuses a request
      // that carries both a presigned query and an Authorization header; in production the bucket
      // has its own host name, so give it one here too.
      storageToml = storageToml
        .replace(`endpoint = "${s3.endpoint}"`, `endpoint = "${s3.endpoint.replace("127.0.0.1", "localhost")}"`)
        .replace("[storage.credentials]", "presign-downloads = true\n[storage.credentials]");
    }
  }
  const toml = [
    `listen = "127.0.0.1:0"`,
    `spool-dir = ${JSON.stringify(opts.spoolDir ?? join(dir.path, "spool"))}`,
    opts.extraToml ?? "",
    `[database]\nurl = ${JSON.stringify(databaseUrl)}`,
    storageToml,
    `[compression]\ntype = "${opts.compression ?? "zstd"}"`,
    `[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"`,
    `[log]\nlevel = "silent"`,
  ].join("\n");
  const config = parseConfig(toml, {});
  const lines = opts.logLines;
  const log = lines
    ? pino({ level: "debug" }, { write: (line: string) => void lines.push(line) })
    : pino({ level: process.env.LARDER_TEST_LOG ?? "silent" });
  const serverOpts = { log, accessFlushMs: 200, ...(opts.narInfoTtlMs !== undefined && { narInfoTtlMs: opts.narInfoTtlMs }) };
  let server = await startServer(config, serverOpts);
  const token = (grants: Partial<Record<PermissionName, string[]>>, sub = "test", validitySeconds = 3600) =>
    signClaims(server.ctx.tokens, buildClaims({ sub, validitySeconds, grants }));
  const larder: Larder = {
    url: server.url,
    server,
    config,
    toml,
    dir,
    ...(s3 && { s3 }),
    token,
    rootToken: await token(ALL_PERMISSIONS(), "root"),
    async restart() {
      const port = Number(new URL(larder.url).port);
      await server.close();
      server = await startServer({ ...config, listen: { host: "127.0.0.1", port } }, serverOpts);
      larder.server = server;
    },
    async stop() {
      await server.close();
      await s3?.stop();
      await dir.cleanup();
    },
  };
  return larder;
}

export interface CacheSpec {
  isPublic?: boolean;
  priority?: number;
  upstream?: string[];
  keypair?: "Generate" | { Keypair: string };
}

/** Creates a cache through attic's API, as a client would; returns its public key. */
export async function createTestCache(l: Larder, name: string, spec: CacheSpec = {}): Promise<string> {
  const res = await fetch(`${l.url}/_api/v1/cache-config/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${l.rootToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      keypair: spec.keypair ?? "Generate",
      is_public: spec.isPublic ?? false,
      store_dir: "/nix/store",
      priority: spec.priority ?? 41,
      upstream_cache_key_names: spec.upstream ?? ["cache.nixos.org-1"],
    }),
  });
  if (res.status !== 200) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
  const info = await fetch(`${l.url}/_api/v1/cache-config/${name}`, { headers: { authorization: `Bearer ${l.rootToken}` } });
  return ((await info.json()) as { public_key: string }).public_key;
}
