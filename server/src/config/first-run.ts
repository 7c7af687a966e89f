/**
 * Zero-config start: when no config exists, write one (SQLite and local storage under the XDG
 * data dir, a fresh random HS256 secret) with mode 0600, so a second start reuses it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

export interface XdgPaths {
  configFile: string;
  dataDir: string;
}

export function xdgPaths(env: Record<string, string | undefined>): XdgPaths {
  const home = env.HOME ?? "/root";
  const configHome = env.XDG_CONFIG_HOME || join(home, ".config");
  const dataHome = env.XDG_DATA_HOME || join(home, ".local", "share");
  return { configFile: join(configHome, "larder", "server.toml"), dataDir: join(dataHome, "larder") };
}

const tomlString = (s: string) => JSON.stringify(s);

export function firstRunConfig(dataDir: string, secretBase64: string): string {
  return `# larderd configuration, written on first start. Every key is documented in docs/CONFIG.md.
listen = "[::]:8080"

# Public URL of this server (ending in "/"); derived from Host and X-Forwarded-Proto when unset.
# api-endpoint = "https://cache.example.com/"

[database]
url = ${tomlString(`sqlite://${join(dataDir, "server.db")}`)}

[storage]
type = "local"
path = ${tomlString(join(dataDir, "storage"))}

[compression]
type = "zstd"

[garbage-collection]
interval = "12 hours"
default-retention-period = "0s"

[jwt.signing]
# Tokens are signed with this secret: keep it private; changing it invalidates every token.
token-hs256-secret-base64 = ${tomlString(secretBase64)}
`;
}

/** Writes a fresh config at `paths.configFile`; returns its text. */
export async function writeFirstRunConfig(paths: XdgPaths): Promise<string> {
  const text = firstRunConfig(paths.dataDir, randomBytes(64).toString("base64"));
  await mkdir(dirname(paths.configFile), { recursive: true, mode: 0o700 });
  await mkdir(paths.dataDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.configFile, text, { mode: 0o600, flag: "wx" });
  return text;
}
