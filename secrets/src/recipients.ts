/**
 * The recipients config, `recipients.json` next to the encrypted files (plain data, so Nix can
 * read it too with builtins.fromJSON):
 *
 *     {
 *       "people":  { "alice": "ssh-ed25519 AAAA… alice@laptop" },
 *       "hosts":   { "larder": "ssh-ed25519 AAAA… root@larder" },
 *       "groups":  { "admins": ["alice"], "servers": ["larder"] },
 *       "secrets": { "larderd.env.age": ["admins", "servers"], "root-token.age": ["admins"] }
 *     }
 *
 * A person or host has one key or a list of keys. A secret is readable by groups and/or single
 * names. Names are unique across people, hosts and groups; unknown keys are rejected.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join, normalize } from "node:path";
import { parseRecipient, type ParsedRecipient } from "./age/keys.ts";

export const CONFIG_FILE = "recipients.json";

export interface Reader {
  /** The person or host the key belongs to. */
  owner: string;
  key: ParsedRecipient;
}

export interface RecipientsConfig {
  people: Record<string, string[]>;
  hosts: Record<string, string[]>;
  groups: Record<string, string[]>;
  secrets: Record<string, string[]>;
}

export class ConfigError extends Error {}

const TOP_KEYS = ["people", "hosts", "groups", "secrets"] as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, where: string, allowSingle: boolean): string[] {
  if (allowSingle && typeof value === "string") return [value];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new ConfigError(`${where} must be ${allowSingle ? "a string or " : ""}a list of strings`);
  }
  return value as string[];
}

export function parseConfig(json: unknown, file = CONFIG_FILE): RecipientsConfig {
  if (!isRecord(json)) throw new ConfigError(`${file} must hold a JSON object`);
  for (const key of Object.keys(json)) {
    if (!(TOP_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(`${file}: unknown key "${key}" (expected ${TOP_KEYS.join(", ")})`);
    }
  }
  const config: RecipientsConfig = { people: {}, hosts: {}, groups: {}, secrets: {} };
  const owners = new Map<string, string>();
  for (const section of TOP_KEYS) {
    const value = json[section] ?? {};
    if (!isRecord(value)) throw new ConfigError(`${file}: "${section}" must be an object`);
    for (const [name, entry] of Object.entries(value)) {
      const where = `${file}: ${section}.${name}`;
      if (section === "secrets") {
        checkSecretPath(name, where);
      } else {
        if (!NAME.test(name)) throw new ConfigError(`${where}: names use letters, digits, ".", "_" and "-"`);
        const other = owners.get(name);
        if (other !== undefined) throw new ConfigError(`${where}: "${name}" is already defined in ${other}`);
        owners.set(name, section);
      }
      const list = stringList(entry, where, section === "people" || section === "hosts");
      if (list.length === 0) throw new ConfigError(`${where} is empty`);
      config[section][name] = list;
    }
  }
  for (const [group, members] of Object.entries(config.groups)) {
    for (const member of members) {
      if (config.people[member] === undefined && config.hosts[member] === undefined) {
        throw new ConfigError(`${file}: groups.${group}: "${member}" is not a person or host`);
      }
    }
  }
  for (const [secret, readers] of Object.entries(config.secrets)) {
    for (const reader of readers) {
      if (!owners.has(reader)) throw new ConfigError(`${file}: secrets.${secret}: "${reader}" is not a group, person or host`);
    }
  }
  for (const section of ["people", "hosts"] as const) {
    for (const [name, keys] of Object.entries(config[section])) {
      for (const key of keys) {
        try {
          parseRecipient(key);
        } catch (error) {
          throw new ConfigError(`${file}: ${section}.${name}: ${(error as Error).message}`);
        }
      }
    }
  }
  return config;
}

function checkSecretPath(name: string, where: string): void {
  if (!name.endsWith(".age")) throw new ConfigError(`${where}: secret files end in .age`);
  if (isAbsolute(name) || normalize(name) !== name || name.startsWith("..") || name.includes("\\")) {
    throw new ConfigError(`${where}: secret paths are relative to the secrets directory, without "..", "." or "//"`);
  }
}

export function loadConfig(dir: string): RecipientsConfig {
  const path = join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new ConfigError(`${path} not found; create it (see secrets/README) or pass --dir`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  return parseConfig(json, path);
}

/** The keys that must be able to read `secret`, deduplicated, in config order. */
export function readersOf(config: RecipientsConfig, secret: string): Reader[] {
  const names = config.secrets[secret];
  if (names === undefined) {
    throw new ConfigError(`${secret} is not listed in ${CONFIG_FILE}; add it under "secrets" with the groups that may read it`);
  }
  const owners: string[] = [];
  for (const name of names) {
    for (const owner of config.groups[name] ?? [name]) if (!owners.includes(owner)) owners.push(owner);
  }
  const readers: Reader[] = [];
  const seen = new Set<string>();
  for (const owner of owners) {
    for (const text of config.people[owner] ?? config.hosts[owner] ?? []) {
      const key = parseRecipient(text);
      if (seen.has(key.canonical)) continue;
      seen.add(key.canonical);
      readers.push({ owner, key });
    }
  }
  return readers;
}
