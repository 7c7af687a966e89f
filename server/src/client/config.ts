/**
 * The client's config, `$XDG_CONFIG_HOME/larder/config.toml` (mode 0600, it holds tokens), in
 * attic's layout so an attic config can be copied over:
 *
 *   default-server = "work"
 *   [servers.work]
 *   endpoint = "https://cache.example/"
 *   token = "…"            # or token-file = "/run/secrets/larder-token"
 */
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { LARDER } from "../util/invocation.ts";
import { dirname, join } from "node:path";
import { stringify } from "smol-toml";
import { parseTomlText } from "../util/toml.ts";
import { isValidCacheName } from "../auth/permissions.ts";
import { CliError, fail } from "./errors.ts";

export type Env = Record<string, string | undefined>;

export interface ServerEntry {
  endpoint: string;
  token?: string;
  tokenFile?: string;
}

export interface ClientConfig {
  defaultServer?: string;
  /** By name; a Map, since names come from the command line (`constructor` is a valid one). */
  servers: Map<string, ServerEntry>;
}

export function configDir(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && xdg.startsWith("/")) return xdg;
  if (!env.HOME) fail("neither XDG_CONFIG_HOME nor HOME is set, so there is nowhere to keep the client config");
  return join(env.HOME, ".config");
}

export function configPath(env: Env): string {
  return join(configDir(env), "larder", "config.toml");
}

export async function loadClientConfig(env: Env): Promise<ClientConfig> {
  const file = configPath(env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { servers: new Map() };
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = parseTomlText(text);
  } catch (e) {
    throw new CliError(`${file} is not valid TOML: ${(e as Error).message}`);
  }
  const unknown = Object.keys(raw).filter((k) => k !== "default-server" && k !== "servers");
  if (unknown.length > 0) fail(`${file}: unknown key ${unknown.join(", ")} (expected default-server and [servers.NAME])`);
  const cfg: ClientConfig = { servers: new Map() };
  if (raw["default-server"] !== undefined) {
    if (typeof raw["default-server"] !== "string") fail(`${file}: default-server must be a string`);
    cfg.defaultServer = raw["default-server"];
  }
  const servers = (raw.servers ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, s] of Object.entries(servers)) {
    const bad = Object.keys(s).filter((k) => !["endpoint", "token", "token-file"].includes(k));
    if (bad.length > 0) fail(`${file}: [servers.${name}] has unknown key ${bad.join(", ")} (expected endpoint, token, token-file)`);
    if (typeof s.endpoint !== "string") fail(`${file}: [servers.${name}] needs endpoint = "https://…/"`);
    cfg.servers.set(name, {
      endpoint: s.endpoint,
      ...(typeof s.token === "string" && { token: s.token }),
      ...(typeof s["token-file"] === "string" && { tokenFile: s["token-file"] }),
    });
  }
  return cfg;
}

export async function saveClientConfig(env: Env, cfg: ClientConfig): Promise<string> {
  const file = configPath(env);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const out: Record<string, unknown> = {};
  if (cfg.defaultServer !== undefined) out["default-server"] = cfg.defaultServer;
  out.servers = Object.fromEntries(
    [...cfg.servers].map(([name, s]) => [name, { endpoint: s.endpoint, ...(s.token !== undefined && { token: s.token }), ...(s.tokenFile !== undefined && { "token-file": s.tokenFile }) }]),
  );
  // Written to a 0600 file first, then renamed: the token is never readable by others, not even briefly.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${stringify(out)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return file;
}

export function checkServerName(name: string): void {
  if (!isValidCacheName(name)) fail(`invalid server name "${name}": use 1–50 of A-Z a-z 0-9 - _ +, starting with a letter or digit`);
}

/** `https://host/path` → the endpoint with exactly one trailing slash (URLs are joined onto it). */
export function normalizeEndpoint(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    fail(`"${url}" is not a URL; give the server's address, e.g. https://cache.example.com/`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") fail(`"${url}" is not an http(s) URL`);
  if (u.search || u.hash) fail(`"${url}" has a query or fragment; give the server's base URL`);
  return u.href.endsWith("/") ? u.href : `${u.href}/`;
}

export interface ResolvedServer {
  name: string;
  endpoint: string;
  token: string | undefined;
}

export async function resolveServer(cfg: ClientConfig, name: string | undefined): Promise<ResolvedServer> {
  const n = name ?? cfg.defaultServer;
  if (n === undefined) fail(`no server is configured; log in first: ${LARDER} login NAME URL [TOKEN]`);
  const s = cfg.servers.get(n);
  if (!s) {
    const known = [...cfg.servers.keys()];
    fail(`unknown server "${n}"${known.length > 0 ? ` (configured: ${known.join(", ")})` : ""}; add it with: ${LARDER} login ${n} URL [TOKEN]`);
  }
  let token = s.token;
  if (token === undefined && s.tokenFile !== undefined) {
    try {
      token = (await readFile(s.tokenFile, "utf8")).trim();
    } catch (e) {
      fail(`cannot read the token file ${s.tokenFile} of server "${n}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return { name: n, endpoint: s.endpoint, token };
}

export interface CacheRef {
  server: string | undefined;
  cache: string;
}

/** `cache` (on the default server) or `server:cache`, as attic's client reads them. */
export function parseCacheRef(ref: string): CacheRef {
  const colon = ref.indexOf(":");
  const server = colon >= 0 ? ref.slice(0, colon) : undefined;
  const cache = colon >= 0 ? ref.slice(colon + 1) : ref;
  if (server !== undefined) checkServerName(server);
  if (!isValidCacheName(cache)) fail(`invalid cache name "${cache}": use 1–50 of A-Z a-z 0-9 - _ +, starting with a letter or digit`);
  return { server, cache };
}
