/** Validation of untrusted path parts, done before any lookup. */
import { ServerError } from "../errors.ts";
import { isStorePathHash, parseBaseName } from "../nix/store-path.ts";
import { NixFormatError } from "../nix/errors.ts";
import { parseDrvOutputId } from "../nix/realisation.ts";
import { compressionFromNarExtension, type NixCompression } from "../nix/compression.ts";

const NIX32 = "[0-9a-df-np-sv-z]";
const NARINFO_FILE = new RegExp(`^(${NIX32}{32})\\.narinfo$`);
const NAR_FILE = new RegExp(`^(${NIX32}{52})(\\.nar(?:\\.[a-z0-9]{1,8})?)$`);

/** `<hash>.narinfo` → the store-path hash; other names are a 404, a bad hash a 400. */
export function narInfoHash(file: string): string {
  const m = NARINFO_FILE.exec(file);
  if (m) return m[1] as string;
  const dot = file.indexOf(".");
  const stem = dot < 0 ? file : file.slice(0, dot);
  const suffix = dot < 0 ? "" : file.slice(dot);
  if (suffix === ".narinfo" && !isStorePathHash(stem)) {
    throw new ServerError("InvalidStorePathHash", `Invalid store path hash "${stem.slice(0, 64)}": expected 32 nix-base32 characters.`);
  }
  throw new ServerError("NotFound");
}

/** `<hash>-<name>.drv`, a derivation's base name (build log URLs); anything else is a 400. */
export function drvBaseName(file: string): { hash: string; baseName: string } {
  try {
    const { hash, name } = parseBaseName(file);
    if (!name.endsWith(".drv")) throw new NixFormatError(`${JSON.stringify(file.slice(0, 100))} is not a derivation (no ".drv" suffix)`);
    return { hash, baseName: file };
  } catch (e) {
    if (e instanceof NixFormatError) throw new ServerError("RequestError", `General request error: build logs are named by derivation: ${e.message}`);
    throw e;
  }
}

/** `<drv output id>.doi` (realisation URLs) → the id; anything else is a 400. */
export function realisationFileId(file: string): string {
  const id = file.endsWith(".doi") ? file.slice(0, -".doi".length) : "";
  try {
    parseDrvOutputId(id);
  } catch (e) {
    if (e instanceof NixFormatError) throw new ServerError("RequestError", `General request error: ${JSON.stringify(file.slice(0, 120))} is not a realisation file name (sha256:<64 hex digits>!<output>.doi)`);
    throw e;
  }
  return id;
}

export interface NarFileName {
  /** Nix-base32 SHA-256 of the file's (compressed) bytes. */
  fileHash: string;
  compression: NixCompression;
}

const ATTIC_NAR_FILE = new RegExp(`^(${NIX32}{32})\\.nar$`);

/**
 * attic's NAR URL, `nar/<storePathHash>.nar`: its narinfos (cached by Nix for 30 days) name the
 * NAR by the path it belongs to, which is unambiguous within a cache. Undefined for other names.
 */
export function atticNarPath(file: string): string | undefined {
  return ATTIC_NAR_FILE.exec(file)?.[1];
}

/** `nar/<filehash>.nar[.ext]`; anything else, including traversal attempts, is a 400. */
export function narFileName(file: string): NarFileName {
  const m = NAR_FILE.exec(file);
  const compression = m ? compressionFromNarExtension(`${m[1]}${m[2]}`) : undefined;
  if (!m || compression === undefined) {
    throw new ServerError("RequestError", `General request error: "${file.slice(0, 100)}" is not a NAR file name (nar/<52 nix-base32 chars>.nar[.xz|.zst|.br|.bz2]).`);
  }
  return { fileHash: m[1] as string, compression };
}
