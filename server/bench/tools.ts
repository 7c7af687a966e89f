/**
 * The outside tools the bench needs, found or (when allowed) installed from Debian. nginx is the
 * reference server; wrk the load generator, chosen over autocannon because autocannon reports
 * latency in whole milliseconds (a narinfo takes tens of microseconds) and its per-request
 * JavaScript caps one connection at well under half of what wrk drives on the same core, which
 * would hide the very difference the bench is for.
 */
import { accessSync, constants } from "node:fs";
import * as path from "node:path";
import { run } from "./proc.ts";

export interface Tool {
  name: string;
  /** Debian package that provides it. */
  pkg: string;
  /** Where it may live off PATH (nginx is in /usr/sbin, which a user's PATH may lack). */
  extra?: string[];
}

export const TOOLS: Tool[] = [
  { name: "nix", pkg: "nix-bin" },
  { name: "nix-build", pkg: "nix-bin" },
  { name: "nginx", pkg: "nginx", extra: ["/usr/sbin/nginx"] },
  { name: "wrk", pkg: "wrk" },
  { name: "zstd", pkg: "zstd" },
  { name: "sha256sum", pkg: "coreutils" },
];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findTool(t: Tool): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "" && executable(path.join(dir, t.name))) return path.join(dir, t.name);
  }
  for (const f of t.extra ?? []) if (executable(f)) return f;
  return null;
}

export type ToolPaths = Record<string, string>;

/**
 * Finds every tool; missing ones are installed with apt-get when `install` is true and we are
 * root, otherwise the error says which packages to install.
 */
export async function ensureTools(install: boolean, log: (s: string) => void): Promise<ToolPaths> {
  let missing = TOOLS.filter((t) => findTool(t) === null);
  if (missing.length > 0 && install) {
    const pkgs = [...new Set(missing.map((t) => t.pkg))];
    if (process.getuid?.() !== 0) throw new Error(`--install needs root to run apt-get; install them yourself: sudo apt-get install ${pkgs.join(" ")}`);
    log(`installing ${pkgs.join(" ")} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    await run("apt-get", ["update", "-qq"], { env, timeoutMs: 600_000 });
    await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...pkgs], { env, timeoutMs: 600_000 });
    missing = TOOLS.filter((t) => findTool(t) === null);
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.pkg))];
    throw new Error(
      `missing ${missing.map((t) => t.name).join(", ")}: install with \`apt-get install ${pkgs.join(" ")}\` (Debian), or run \`npm run bench -- --install\` as root`,
    );
  }
  return Object.fromEntries(TOOLS.map((t) => [t.name, findTool(t) as string]));
}
