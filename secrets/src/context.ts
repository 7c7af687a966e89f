import { isAbsolute, relative, resolve, sep } from "node:path";
import { loadIdentities } from "./identities.ts";
import type { ParsedIdentity } from "./age/keys.ts";

/** Everything a command may know about the outside world; only cli.ts builds it. */
export interface Context {
  /** The secrets directory: recipients.json, recipients.lock.json and the .age files. */
  dir: string;
  cwd: string;
  home: string;
  identityPaths: string[];
  editor: string;
  stdinIsTTY: boolean;
  readStdin: () => Promise<Uint8Array>;
  out: (text: string) => void;
  err: (text: string) => void;
  writeOut: (bytes: Uint8Array) => void;
}

export function identitiesFor(ctx: Context): Promise<ParsedIdentity[]> {
  return loadIdentities(ctx.identityPaths, ctx.home);
}

/**
 * The config name of a secret given on the command line: a path from the current directory
 * that lies in the secrets directory, or a name relative to the secrets directory.
 */
export function secretName(ctx: Context, arg: string): string {
  const inside = (rel: string) => rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
  const fromCwd = relative(ctx.dir, resolve(ctx.cwd, arg));
  if (inside(fromCwd)) return fromCwd.split(sep).join("/");
  const fromDir = relative(ctx.dir, resolve(ctx.dir, arg));
  if (isAbsolute(arg) || !inside(fromDir)) throw new Error(`${arg} is outside the secrets directory ${ctx.dir}`);
  return fromDir.split(sep).join("/");
}
