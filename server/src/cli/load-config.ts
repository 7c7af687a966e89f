/** Finds and parses the server config for a command: --config, LARDER_SERVER_CONFIG_BASE64, or the XDG file. */
import { readFile } from "node:fs/promises";
import { ConfigError, parseConfig, type Config } from "../config/load.ts";
import { xdgPaths } from "../config/first-run.ts";

export type Env = Record<string, string | undefined>;

export async function readConfigText(path: string | undefined, env: Env): Promise<{ text: string; source: string } | undefined> {
  if (path !== undefined) {
    try {
      return { text: await readFile(path, "utf8"), source: path };
    } catch (e) {
      throw new ConfigError(`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
  }
  const b64 = env.LARDER_SERVER_CONFIG_BASE64 ?? env.ATTIC_SERVER_CONFIG_BASE64;
  if (b64) return { text: Buffer.from(b64, "base64").toString("utf8"), source: "LARDER_SERVER_CONFIG_BASE64" };
  const file = xdgPaths(env).configFile;
  try {
    return { text: await readFile(file, "utf8"), source: file };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
}

export async function loadConfig(path: string | undefined, env: Env): Promise<Config> {
  const found = await readConfigText(path, env);
  if (!found) throw new ConfigError(`no config found at ${xdgPaths(env).configFile}; pass --config PATH (or start larderd once to create one)`);
  try {
    return parseConfig(found.text, env);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${found.source}: ${e.message}`);
    throw e;
  }
}
