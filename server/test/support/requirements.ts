import { accessSync, constants, readdirSync } from "node:fs";
import * as path from "node:path";

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `name` on PATH, or null. */
export function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return null;
}

/**
 * Whether a test that needs `name` can run. Locally a missing tool means "skip" (the caller passes the result to
 * it.skipIf / describe.skipIf); under CI=true a missing tool is a broken runner, so it throws instead.
 */
export function requireTool(name: string, reason: string): boolean {
  if (which(name) !== null) return true;
  return missing(`${name} is not on PATH`, reason);
}

/** Shared by requireTool and callers that locate tools some other way (e.g. PostgreSQL's versioned bin dir). */
export function missing(what: string, reason: string): false {
  if (process.env.CI === "true") {
    throw new Error(`${what}, but CI=true requires it (${reason}); install it on the CI runner`);
  }
  console.warn(`skipping: ${what} (${reason})`);
  return false;
}

/**
 * A PostgreSQL server binary (initdb, pg_ctl, postgres, …): Debian keeps them in /usr/lib/postgresql/<major>/bin,
 * off PATH; the newest major wins, then PATH.
 */
export function findPostgresBin(name: string): string | null {
  const root = "/usr/lib/postgresql";
  let majors: string[] = [];
  try {
    majors = readdirSync(root).filter((d) => /^\d+(\.\d+)?$/.test(d));
  } catch {
    // Not Debian's layout; fall back to PATH.
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const file = path.join(root, major, "bin", name);
    if (isExecutable(file)) return file;
  }
  return which(name);
}
