import { decodeNixBase32, encodeNixBase32 } from "./base32.ts";
import { NixFormatError } from "./errors.ts";

/** A SHA-256 digest; the only hash algorithm larder deals in (NarHash, FileHash). */
export type Sha256 = { readonly algo: "sha256"; readonly digest: Buffer };

const DIGEST_BYTES = 32;
const HEX_RE = /^[0-9a-fA-F]{64}$/;
const B64_RE = /^[A-Za-z0-9+/]{43}=$/;
const KNOWN_ALGOS = new Set(["md5", "sha1", "sha256", "sha512"]);

export function sha256FromDigest(digest: Uint8Array): Sha256 {
  if (digest.length !== DIGEST_BYTES) {
    throw new NixFormatError(`a SHA-256 digest has ${DIGEST_BYTES} bytes, got ${digest.length}`);
  }
  return { algo: "sha256", digest: Buffer.from(digest) };
}

/**
 * Parses `sha256:<64 hex>`, `sha256:<52 nix32>`, `sha256:<44 base64>` (Nix accepts all three
 * after the prefix) or SRI `sha256-<base64>`. A bare digest without algorithm is rejected:
 * narinfos always carry the prefix and guessing would hide mistakes.
 */
export function parseHash(s: string): Sha256 {
  const colon = s.indexOf(":");
  const dash = s.indexOf("-");
  let algo: string;
  let body: string;
  let sri: boolean;
  if (colon > 0 && (dash < 0 || colon < dash)) {
    algo = s.slice(0, colon);
    body = s.slice(colon + 1);
    sri = false;
  } else if (dash > 0) {
    algo = s.slice(0, dash);
    body = s.slice(dash + 1);
    sri = true;
  } else {
    throw new NixFormatError(`invalid hash ${JSON.stringify(s)}: expected "sha256:<digest>" or "sha256-<base64>"`);
  }
  if (algo !== "sha256") {
    if (KNOWN_ALGOS.has(algo)) throw new NixFormatError(`unsupported hash algorithm "${algo}" (only sha256 is supported)`);
    throw new NixFormatError(`invalid hash ${JSON.stringify(s)}: unknown hash algorithm ${JSON.stringify(algo)}`);
  }
  if (sri) {
    if (!B64_RE.test(body)) {
      throw new NixFormatError(`invalid SRI hash ${JSON.stringify(s)}: expected 44 base64 characters after "sha256-"`);
    }
    return sha256FromDigest(Buffer.from(body, "base64"));
  }
  if (body.length === 64) {
    if (!HEX_RE.test(body)) throw new NixFormatError(`invalid hash ${JSON.stringify(s)}: 64 characters but not hexadecimal`);
    return sha256FromDigest(Buffer.from(body, "hex"));
  }
  if (body.length === 52) {
    try {
      return sha256FromDigest(decodeNixBase32(body));
    } catch (e) {
      if (e instanceof NixFormatError) throw new NixFormatError(`invalid hash ${JSON.stringify(s)}: ${e.message}`);
      throw e;
    }
  }
  if (body.length === 44) {
    if (!B64_RE.test(body)) throw new NixFormatError(`invalid hash ${JSON.stringify(s)}: 44 characters but not base64`);
    return sha256FromDigest(Buffer.from(body, "base64"));
  }
  throw new NixFormatError(
    `invalid hash ${JSON.stringify(s)}: a sha256 digest has 64 hex, 52 Nix base32 or 44 base64 characters, got ${body.length}`,
  );
}

export function formatNix32(h: Sha256): string {
  return `sha256:${encodeNixBase32(h.digest)}`;
}

export function formatHex(h: Sha256): string {
  return `sha256:${h.digest.toString("hex")}`;
}

export function formatSri(h: Sha256): string {
  return `sha256-${h.digest.toString("base64")}`;
}

export function sha256Equal(a: Sha256, b: Sha256): boolean {
  return a.algo === b.algo && a.digest.equals(b.digest);
}
