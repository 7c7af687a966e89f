import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseRecipient } from "../age/keys.ts";
import type { Context } from "../context.ts";
import { writeAtomic } from "../private-files.ts";
import { CONFIG_FILE, ConfigError, parseConfig } from "../recipients.ts";

/**
 * Replaces the key(s) of a person or host, e.g. after an instance got a new host key. Other
 * entries are kept as they are; the file is rewritten with two-space indentation.
 */
export function setKey(ctx: Context, name: string, key: string): { changed: boolean } {
  const canonical = parseRecipient(key).canonical;
  const path = join(ctx.dir, CONFIG_FILE);
  const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, Record<string, unknown>>;
  const config = parseConfig(json, path);
  const section = config.hosts[name] !== undefined ? "hosts" : config.people[name] !== undefined ? "people" : undefined;
  if (section === undefined) throw new ConfigError(`${name} is not a person or host in ${CONFIG_FILE}; add it there first`);
  const current = config[section][name] ?? [];
  if (current.length === 1 && parseRecipient(current[0] ?? "").canonical === canonical) return { changed: false };
  (json[section] as Record<string, unknown>)[name] = canonical;
  parseConfig(json, path);
  writeAtomic(path, new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`));
  return { changed: true };
}
