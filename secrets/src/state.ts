/**
 * `recipients.lock.json` records, for every file larder-secrets wrote, the SHA-256 of the file
 * and the public keys it was encrypted to. The age header alone cannot say that: an X25519
 * stanza holds only an ephemeral share, not the recipient. With the record, `check` and `rekey`
 * know without any private key whether a file matches the config, and a file changed by another
 * tool shows up as a hash mismatch.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { abbreviate, AgeFileError, readStanzaArgs } from "./age/file.ts";
import { sshKeyTag } from "./age/ssh-ed25519.ts";
import { writeAtomic } from "./private-files.ts";
import { CONFIG_FILE, ConfigError, readersOf, type RecipientsConfig } from "./recipients.ts";

export const LOCK_FILE = "recipients.lock.json";

export interface LockEntry {
  sha256: string;
  recipients: string[];
}

export type Lock = Record<string, LockEntry>;

export function loadLock(dir: string): Lock {
  const path = join(dir, LOCK_FILE);
  if (!existsSync(path)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON (${(error as Error).message}); delete it and run rekey`);
  }
  const files = (json as { version?: unknown; files?: unknown } | null)?.files;
  if ((json as { version?: unknown }).version !== 1 || typeof files !== "object" || files === null) {
    throw new ConfigError(`${path} is not a version 1 lock file; delete it and run rekey`);
  }
  const lock: Lock = {};
  for (const [file, entry] of Object.entries(files)) {
    const e = entry as Partial<LockEntry>;
    if (typeof e.sha256 !== "string" || !Array.isArray(e.recipients)) {
      throw new ConfigError(`${path}: entry ${file} is malformed; delete the file and run rekey`);
    }
    lock[file] = { sha256: e.sha256, recipients: e.recipients.map(String) };
  }
  return lock;
}

export function saveLock(dir: string, lock: Lock): void {
  const files: Lock = {};
  for (const file of Object.keys(lock).sort()) files[file] = lock[file] as LockEntry;
  writeAtomic(join(dir, LOCK_FILE), new TextEncoder().encode(`${JSON.stringify({ version: 1, files }, null, 2)}\n`));
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function wantedKeys(config: RecipientsConfig, file: string): string[] {
  return readersOf(config, file).map((r) => r.key.canonical).sort();
}

/** What a header's stanzas should look like for a set of keys: ssh keys by tag, X25519 by count. */
function stanzaShape(canonical: string): string {
  const [type, blob = ""] = canonical.split(" ");
  if (type === "ssh-ed25519" || type === "ssh-rsa") return `${type} ${sshKeyTag(new Uint8Array(Buffer.from(blob, "base64")))}`;
  return "X25519";
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Why `file` does not match the config, or null if it does. Needs no private key. */
export function problemWith(dir: string, config: RecipientsConfig, lock: Lock, file: string): string | null {
  const path = join(dir, file);
  if (!existsSync(path)) return `missing; create it with "larder-secrets add ${file}"`;
  const bytes = new Uint8Array(readFileSync(path));
  let stanzas: string[][];
  try {
    stanzas = readStanzaArgs(bytes, file);
  } catch (error) {
    if (error instanceof AgeFileError) return error.message;
    throw error;
  }
  const entry = lock[file];
  if (entry === undefined) return `not recorded in ${LOCK_FILE} (written by another tool?); run "larder-secrets rekey"`;
  if (entry.sha256 !== sha256Hex(bytes)) return `changed since larder-secrets wrote it; run "larder-secrets rekey"`;
  const want = wantedKeys(config, file);
  if (!sameList(entry.recipients, want)) {
    const added = want.filter((k) => !entry.recipients.includes(k));
    const removed = entry.recipients.filter((k) => !want.includes(k));
    const owners = new Map(readersOf(config, file).map((r) => [r.key.canonical, r.owner]));
    const names = [...added.map((k) => `+${owners.get(k) ?? abbreviate(k)}`), ...removed.map((k) => `-${abbreviate(k)}`)];
    return `recipients differ from ${CONFIG_FILE} (${names.join(" ")}); run "larder-secrets rekey"`;
  }
  const expected = entry.recipients.map(stanzaShape).sort();
  const actual = stanzas.map((s) => (s[0] === "X25519" ? "X25519" : `${s[0]} ${s[1] ?? ""}`)).sort();
  if (!sameList(expected, actual)) return `header does not match the recorded recipients; run "larder-secrets rekey"`;
  return null;
}

/** `.age` files on disk that the config does not list (top level and the configured folders). */
export function unlistedFiles(dir: string, config: RecipientsConfig): string[] {
  const folders = new Set(["", ...Object.keys(config.secrets).map((f) => (f.includes("/") ? dirname(f) : ""))]);
  const found: string[] = [];
  for (const folder of folders) {
    const abs = join(dir, folder);
    if (!existsSync(abs)) continue;
    for (const name of readdirSync(abs)) {
      const rel = folder === "" ? name : `${folder}/${name}`;
      if (name.endsWith(".age") && config.secrets[rel] === undefined) found.push(rel);
    }
  }
  return found.sort();
}
