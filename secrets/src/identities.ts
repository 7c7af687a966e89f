/**
 * Which private keys to try, as agenix does: every `-i PATH` given, otherwise the user's
 * default ssh keys. An age identity file (age-keygen output) works with -i.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseIdentityFile, type ParsedIdentity } from "./age/keys.ts";

export function defaultIdentityPaths(home: string): string[] {
  return [join(home, ".ssh", "id_ed25519"), join(home, ".ssh", "id_rsa")];
}

export async function loadIdentities(explicit: readonly string[], home: string): Promise<ParsedIdentity[]> {
  if (explicit.length > 0) {
    const all: ParsedIdentity[] = [];
    for (const path of explicit) {
      if (!existsSync(path)) throw new Error(`identity file ${path} not found`);
      all.push(...(await parseIdentityFile(readFileSync(path, "utf8"), path)));
    }
    return all;
  }
  const defaults = defaultIdentityPaths(home);
  const all: ParsedIdentity[] = [];
  const skipped: string[] = [];
  for (const path of defaults.filter((p) => existsSync(p))) {
    try {
      all.push(...(await parseIdentityFile(readFileSync(path, "utf8"), path)));
    } catch (error) {
      // A passphrase-protected default key should not hide a usable second one.
      skipped.push((error as Error).message);
    }
  }
  if (all.length === 0) {
    const why = skipped.length > 0 ? ` (${skipped.join("; ")})` : "";
    throw new Error(`no identity found: looked for ${defaults.join(" and ")}${why}; pass -i PATH (an ssh private key or an age identity file)`);
  }
  return all;
}
