import { isNixBase32 } from "./base32.ts";
import { NixFormatError } from "./errors.ts";

/** Characters in a store path's hash part (160 bits in Nix base32). */
export const STORE_PATH_HASH_LENGTH = 32;
/** Nix's limit for the name part; longer names make the base name exceed 255 bytes with the hash. */
export const STORE_PATH_NAME_MAX = 211;

const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

export function isStorePathHash(s: string): boolean {
  return s.length === STORE_PATH_HASH_LENGTH && isNixBase32(s);
}

/** Throws unless `name` is a valid store path name (the part after `<hash>-`). */
export function checkStorePathName(name: string): void {
  if (name.length === 0) throw new NixFormatError("store path name is empty");
  if (name.length > STORE_PATH_NAME_MAX) {
    throw new NixFormatError(`store path name is ${name.length} characters long, the limit is ${STORE_PATH_NAME_MAX}`);
  }
  if (name.startsWith(".")) throw new NixFormatError(`store path name ${JSON.stringify(name)} starts with a period`);
  if (!NAME_RE.test(name)) {
    throw new NixFormatError(
      `store path name ${JSON.stringify(name)} contains a character outside [A-Za-z0-9+-._?=]`,
    );
  }
}

/** Splits `<32-char hash>-<name>`, e.g. a narinfo References entry. */
export function parseBaseName(baseName: string): { hash: string; name: string } {
  const hash = baseName.slice(0, STORE_PATH_HASH_LENGTH);
  if (baseName.length < STORE_PATH_HASH_LENGTH + 2 || baseName[STORE_PATH_HASH_LENGTH] !== "-") {
    throw new NixFormatError(
      `invalid store path base name ${JSON.stringify(baseName)}: expected "<32-character hash>-<name>"`,
    );
  }
  if (!isNixBase32(hash)) {
    throw new NixFormatError(
      `invalid store path base name ${JSON.stringify(baseName)}: the hash part contains characters outside Nix base32`,
    );
  }
  const name = baseName.slice(STORE_PATH_HASH_LENGTH + 1);
  try {
    checkStorePathName(name);
  } catch (e) {
    if (e instanceof NixFormatError) {
      throw new NixFormatError(`invalid store path base name ${JSON.stringify(baseName)}: ${e.message}`);
    }
    throw e;
  }
  return { hash, name };
}

export function isValidStoreDir(dir: string): boolean {
  return (
    dir.startsWith("/") &&
    dir.length > 1 &&
    !dir.endsWith("/") &&
    !dir.includes("//") &&
    !dir.split("/").some((seg) => seg === "." || seg === "..") &&
    !dir.includes("\0")
  );
}

export function parseStorePath(
  path: string,
  storeDir = "/nix/store",
): { storeDir: string; hash: string; name: string; baseName: string } {
  if (!isValidStoreDir(storeDir)) {
    throw new NixFormatError(`invalid store directory ${JSON.stringify(storeDir)}: must be absolute, without "//", "." or ".." segments, and no trailing slash`);
  }
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  if (slash < 0 || dir !== storeDir) {
    throw new NixFormatError(`store path ${JSON.stringify(path)} is not directly inside the store directory ${storeDir}`);
  }
  const baseName = path.slice(slash + 1);
  const { hash, name } = parseBaseName(baseName);
  return { storeDir, hash, name, baseName };
}
