/**
 * `larder use CACHE`: makes the user's Nix substitute from the cache — its URL and public key in
 * `$XDG_CONFIG_HOME/nix/nix.conf` (prepended, so it is tried first; an older key of the same
 * name is replaced), and, when the server has a token, the token in the netrc file nix.conf names
 * (`netrc-file`, added if missing). Every edit is idempotent: running it twice changes nothing.
 */
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { configDir, type Env } from "./config.ts";

const DEFAULT_SUBSTITUTER = "https://cache.nixos.org";
const DEFAULT_KEY = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw e;
  }
}

const SETTING = (name: string) => new RegExp(`^(\\s*${name}\\s*=)(.*)$`);

/** The value of `name` in nix.conf text, or undefined. */
export function confValue(text: string, name: string): string | undefined {
  for (const line of text.split("\n")) {
    const m = SETTING(name).exec(line);
    if (m) return (m[2] as string).trim();
  }
  return undefined;
}

/** Rewrites the `name = …` line with `edit(values)`, or appends `name = fallback` if there is none. */
function editList(text: string, name: string, edit: (values: string[]) => string[], fallback: string[]): string {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => SETTING(name).test(l));
  if (i < 0) {
    const body = text === "" || text.endsWith("\n") ? text : `${text}\n`;
    return `${body}${name} = ${fallback.join(" ")}\n`;
  }
  const m = SETTING(name).exec(lines[i] as string) as RegExpExecArray;
  const values = (m[2] as string).trim().split(/\s+/).filter(Boolean);
  const next = edit(values);
  if (next.join(" ") === values.join(" ")) return text;
  lines[i] = `${m[1]} ${next.join(" ")}`;
  return lines.join("\n");
}

export function editNixConf(text: string, substituter: string, publicKey: string, netrcFile: string | undefined): string {
  const keyName = publicKey.slice(0, publicKey.indexOf(":"));
  let out = editList(text, "substituters", (v) => (v.includes(substituter) ? v : [substituter, ...v]), [substituter, DEFAULT_SUBSTITUTER]);
  out = editList(
    out,
    "trusted-public-keys",
    (v) => (v.includes(publicKey) ? v : [publicKey, ...v.filter((k) => !k.startsWith(`${keyName}:`))]),
    [publicKey, DEFAULT_KEY],
  );
  if (netrcFile !== undefined && confValue(out, "netrc-file") === undefined) {
    out = `${out === "" || out.endsWith("\n") ? out : `${out}\n`}netrc-file = ${netrcFile}\n`;
  }
  return out;
}

interface NetrcEntry {
  machine: string | undefined;
  fields: [string, string][];
}

/** Sets the password for `host` in netrc text, keeping every other entry. */
export function editNetrc(text: string, host: string, token: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  const entries: NetrcEntry[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "machine") entries.push({ machine: words[++i], fields: [] });
    else if (w === "default") entries.push({ machine: undefined, fields: [] });
    else if (entries.length > 0) (entries.at(-1) as NetrcEntry).fields.push([w, words[++i] ?? ""]);
  }
  const mine = entries.find((e) => e.machine === host);
  if (mine) {
    if (mine.fields.some(([k, v]) => k === "password" && v === token)) return text;
    mine.fields = mine.fields.filter(([k]) => k !== "password");
    if (!mine.fields.some(([k]) => k === "login")) mine.fields.unshift(["login", "larder"]);
    mine.fields.push(["password", token]);
  } else {
    // A `default` entry must stay last; ours goes before it.
    const at = entries.findIndex((e) => e.machine === undefined);
    const entry = { machine: host, fields: [["login", "larder"], ["password", token]] as [string, string][] };
    if (at < 0) entries.push(entry);
    else entries.splice(at, 0, entry);
  }
  return entries.map((e) => `${e.machine === undefined ? "default" : `machine ${e.machine}`}\n${e.fields.map(([k, v]) => `${k} ${v}\n`).join("")}`).join("\n");
}

export interface UseResult {
  nixConf: string;
  netrc: string | undefined;
  changed: boolean;
}

export async function useCache(env: Env, substituter: string, publicKey: string, token: string | undefined): Promise<UseResult> {
  const nixConf = join(configDir(env), "nix", "nix.conf");
  const before = await readOr(nixConf, "");
  const netrc = token ? (confValue(before, "netrc-file") ?? join(dirname(nixConf), "netrc")) : undefined;
  const after = editNixConf(before, substituter, publicKey, netrc);
  let changed = false;
  await mkdir(dirname(nixConf), { recursive: true });
  if (after !== before) {
    await writeFile(nixConf, after);
    changed = true;
  }
  if (netrc !== undefined && token !== undefined) {
    const old = await readOr(netrc, "");
    const next = editNetrc(old, new URL(substituter).hostname, token);
    await mkdir(dirname(netrc), { recursive: true });
    if (next !== old) {
      await writeFile(netrc, next, { mode: 0o600 });
      changed = true;
    }
    await chmod(netrc, 0o600);
  }
  return { nixConf, netrc, changed };
}
