/**
 * better-sqlite3 is a native addon: npm installs a prebuilt one for Linux, macOS and Windows on
 * x64 and arm64, and anything else must compile it. When it cannot be loaded, say what to do
 * instead of Node's "Could not locate the bindings file" or a dlopen error.
 */
import SQLite from "better-sqlite3";

const ADDON_FAILURE = /bindings file|better_sqlite3\.node|NODE_MODULE_VERSION|ERR_DLOPEN_FAILED|invalid ELF|GLIBC_/;

export function addonHint(e: unknown): Error | undefined {
  const message = e instanceof Error ? e.message : String(e);
  if (!ADDON_FAILURE.test(message) && (e as NodeJS.ErrnoException)?.code !== "ERR_DLOPEN_FAILED") return undefined;
  return new Error(
    `SQLite is unavailable: better-sqlite3's native addon does not load on ${process.platform}-${process.arch} with Node ${process.version} ` +
      `(${message.split("\n")[0]}). Build it with: npm rebuild better-sqlite3 (needs a C++ compiler, make and Python; ` +
      `if the Node headers cannot be downloaded, add npm_config_nodedir=DIR, a directory holding include/node of this Node version), ` +
      `or use PostgreSQL (database.url = "postgres://…").`,
  );
}

/** Opens a SQLite database file, explaining a missing or broken addon. */
export function openSqlite(path: string): SQLite.Database {
  try {
    return new SQLite(path);
  } catch (e) {
    throw addonHint(e) ?? e;
  }
}
