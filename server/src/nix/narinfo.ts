import { parseCompression } from "./compression.ts";
import { NarInfoError, NixFormatError } from "./errors.ts";
import { formatNix32, parseHash, type Sha256 } from "./hash.ts";
import { isValidStoreDir, parseBaseName, parseStorePath } from "./store-path.ts";
import { checkContentAddress } from "./content-address.ts";

export interface NarInfo {
  storePath: string;
  url: string;
  compression: string;
  fileHash?: Sha256;
  fileSize?: number;
  narHash: Sha256;
  narSize: number;
  /** Base names (`<hash>-<name>`), sorted by base name as Nix keeps them. */
  references: string[];
  /** Base name of the .drv. */
  deriver?: string;
  system?: string;
  sigs: string[];
  ca?: string;
}

const SINGULAR = new Set([
  "StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "Deriver", "System", "CA",
]);
const SIZE_RE = /^(0|[1-9][0-9]*)$/;
const KEY_RE = /^[A-Za-z][A-Za-z0-9-]*$/;

/** Within one narinfo, a value that carries a newline would start a forged line when rendered. */
function checkValue(field: string, value: string): void {
  if (/[\n\r]/.test(value)) throw new NarInfoError(field, `narinfo ${field} must not contain a line break`);
}

function wrap<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof NarInfoError) throw e;
    if (e instanceof NixFormatError) throw new NarInfoError(field, `narinfo ${field}: ${e.message}`);
    throw e;
  }
}

function parseSize(field: string, value: string): number {
  const n = Number(value);
  if (!SIZE_RE.test(value) || !Number.isSafeInteger(n)) {
    throw new NarInfoError(field, `narinfo ${field} must be a non-negative decimal integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

// Printable ASCII without spaces: what Nix writes for systems and key names.
const TOKEN_RE = /^[\x21-\x7e]+$/;
const SIG_RE = /^[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9+/]+={0,2}$/;

/*
 * One check per metadata field, shared by the narinfo parser (Nix's push) and by attic's
 * upload-path, so the two protocols can never store what the other would refuse, and nothing
 * stored can make a later narinfo unrenderable.
 */

export function checkSystem(value: string): void {
  if (!TOKEN_RE.test(value)) {
    throw new NarInfoError("System", `narinfo System ${JSON.stringify(value.slice(0, 80))} is not a system name like "x86_64-linux" (printable, no spaces)`);
  }
}

export function checkSig(value: string): void {
  if (!SIG_RE.test(value)) {
    throw new NarInfoError("Sig", `narinfo Sig ${JSON.stringify(value.slice(0, 120))} is not "<key name>:<base64 signature>"`);
  }
}

export function checkCa(value: string): void {
  wrap("CA", () => checkContentAddress(value));
}

export function checkReference(value: string): void {
  wrap("References", () => parseBaseName(value));
}

/** A deriver's base name (`<hash>-<name>.drv`). */
export function checkDeriver(value: string): void {
  wrap("Deriver", () => parseBaseName(value));
}

/** What an uploader says about a path besides its NAR, as both push protocols store it. */
export interface PathMetadata {
  storePath: string;
  references: readonly string[];
  deriver: string | null;
  system: string | null;
  sigs: readonly string[];
  ca: string | null;
}

/** Throws NarInfoError naming the first field that a narinfo could not carry. */
export function checkPathMetadata(m: PathMetadata, storeDir: string): void {
  wrap("StorePath", () => parseStorePath(m.storePath, storeDir));
  for (const r of m.references) checkReference(r);
  if (m.deriver !== null) checkDeriver(m.deriver);
  if (m.system !== null) checkSystem(m.system);
  for (const sig of m.sigs) checkSig(sig);
  if (m.ca !== null) checkCa(m.ca);
}

/**
 * Parses a narinfo the way Nix 2.8 reads it, but stricter: a repeated singular key, a malformed
 * value or a CR is an error instead of "last one wins" or garbage. Unknown keys are ignored,
 * as Nix does, so newer clients' fields do not break uploads. References come back sorted and
 * de-duplicated (Nix stores them as a set and signs them in that order).
 */
export function parseNarInfo(text: string): NarInfo {
  if (text.includes("\r")) {
    throw new NarInfoError("(format)", "narinfo must use \\n line ends (found \\r)");
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const seen = new Set<string>();
  const out: Partial<NarInfo> & { references: string[]; sigs: string[] } = { references: [], sigs: [] };

  lines.forEach((line, idx) => {
    const colon = line.indexOf(":");
    const key = colon > 0 ? line.slice(0, colon) : "";
    if (!KEY_RE.test(key) || (line.length > colon + 1 && line[colon + 1] !== " ")) {
      throw new NarInfoError(
        key || `(line ${idx + 1})`,
        `narinfo line ${idx + 1} is not "Key: value": ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    const value = line.slice(colon + 2);
    if (SINGULAR.has(key)) {
      if (seen.has(key)) throw new NarInfoError(key, `narinfo has more than one ${key} line`);
      seen.add(key);
    }
    switch (key) {
      case "StorePath": {
        const dir = value.slice(0, value.lastIndexOf("/"));
        if (!isValidStoreDir(dir)) {
          throw new NarInfoError(key, `narinfo StorePath ${JSON.stringify(value)} is not an absolute store path`);
        }
        wrap(key, () => parseStorePath(value, dir));
        out.storePath = value;
        break;
      }
      case "URL":
        if (value === "") throw new NarInfoError(key, "narinfo URL is empty");
        out.url = value;
        break;
      case "Compression":
        out.compression = wrap(key, () => parseCompression(value));
        break;
      case "FileHash":
        out.fileHash = wrap(key, () => parseHash(value));
        break;
      case "FileSize":
        out.fileSize = parseSize(key, value);
        break;
      case "NarHash":
        out.narHash = wrap(key, () => parseHash(value));
        break;
      case "NarSize":
        out.narSize = parseSize(key, value);
        // Nix treats a zero NarSize as a corrupt narinfo (no NAR is empty).
        if (out.narSize === 0) throw new NarInfoError(key, "narinfo NarSize must be greater than 0");
        break;
      case "References": {
        const refs = value.split(" ").filter((r) => r !== "");
        for (const r of refs) checkReference(r);
        out.references = [...new Set(refs)].sort(compareBytes);
        break;
      }
      case "Deriver":
        if (value !== "unknown-deriver") {
          checkDeriver(value);
          out.deriver = value;
        }
        break;
      case "System":
        checkSystem(value);
        out.system = value;
        break;
      case "Sig":
        checkSig(value);
        out.sigs.push(value);
        break;
      case "CA":
        checkCa(value);
        out.ca = value;
        break;
      default:
        break;
    }
  });

  for (const key of ["StorePath", "URL", "NarHash", "NarSize"] as const) {
    if (!seen.has(key)) throw new NarInfoError(key, `narinfo has no ${key} line`);
  }
  // Nix's rule for narinfos written before the Compression field existed.
  out.compression ??= "bzip2";
  return out as NarInfo;
}

// Store path base names are ASCII, so UTF-16 order is byte order (what Nix's std::set uses).
function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Renders in Nix 2.8's own field order, so a narinfo Nix wrote comes back byte for byte. */
export function renderNarInfo(n: NarInfo): string {
  for (const r of n.references) wrap("References", () => parseBaseName(r));
  const lines: [string, string][] = [
    ["StorePath", n.storePath],
    ["URL", n.url],
    ["Compression", n.compression],
  ];
  if (n.fileHash) lines.push(["FileHash", formatNix32(n.fileHash)]);
  if (n.fileSize !== undefined) lines.push(["FileSize", String(n.fileSize)]);
  lines.push(["NarHash", formatNix32(n.narHash)], ["NarSize", String(n.narSize)], ["References", n.references.join(" ")]);
  if (n.deriver !== undefined) lines.push(["Deriver", n.deriver]);
  if (n.system !== undefined) lines.push(["System", n.system]);
  for (const sig of n.sigs) lines.push(["Sig", sig]);
  if (n.ca !== undefined) lines.push(["CA", n.ca]);
  let text = "";
  for (const [k, v] of lines) {
    checkValue(k, v);
    text += `${k}: ${v}\n`;
  }
  return text;
}
