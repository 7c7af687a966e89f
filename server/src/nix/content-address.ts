/**
 * Nix's content-address strings (the narinfo `CA` field), checked as Nix 2.8's
 * `parseContentAddress` reads them: `text:sha256:<digest>` or `fixed:[r:]<algo>:<digest>`, the
 * digest in base16, Nix base32 or base64 by its length (no SRI form here).
 */
import { decodeNixBase32, nixBase32Length } from "./base32.ts";
import { NixFormatError } from "./errors.ts";

const DIGEST_BYTES = new Map<string, number>([["md5", 16], ["sha1", 20], ["sha256", 32], ["sha512", 64]]);

function checkDigest(ca: string, algo: string, digest: string): void {
  const bytes = DIGEST_BYTES.get(algo);
  if (bytes === undefined) throw new NixFormatError(`content address ${JSON.stringify(ca)}: unknown hash algorithm ${JSON.stringify(algo)} (md5, sha1, sha256, sha512)`);
  if (digest.length === bytes * 2 && /^[0-9a-f]+$/.test(digest)) return;
  if (digest.length === nixBase32Length(bytes)) {
    decodeNixBase32(digest);
    return;
  }
  const b64 = Math.ceil(bytes / 3) * 4;
  if (digest.length === b64 && /^[A-Za-z0-9+/]+={0,2}$/.test(digest) && Buffer.from(digest, "base64").length === bytes) return;
  throw new NixFormatError(`content address ${JSON.stringify(ca)}: not a ${algo} digest in base16, Nix base32 or base64`);
}

export function checkContentAddress(ca: string): void {
  const colon = ca.indexOf(":");
  const prefix = colon < 0 ? "" : ca.slice(0, colon);
  let rest = ca.slice(colon + 1);
  if (prefix === "fixed" && rest.startsWith("r:")) rest = rest.slice(2);
  else if (prefix !== "text" && prefix !== "fixed") {
    throw new NixFormatError(`content address ${JSON.stringify(ca.slice(0, 120))} is not "text:sha256:<hash>" or "fixed:[r:]<algo>:<hash>"`);
  }
  const algoEnd = rest.indexOf(":");
  if (algoEnd <= 0) throw new NixFormatError(`content address ${JSON.stringify(ca.slice(0, 120))} has no "<algo>:" before its hash`);
  const algo = rest.slice(0, algoEnd);
  if (prefix === "text" && algo !== "sha256") throw new NixFormatError(`content address ${JSON.stringify(ca.slice(0, 120))}: text content addresses use sha256`);
  try {
    checkDigest(ca, algo, rest.slice(algoEnd + 1));
  } catch (e) {
    if (e instanceof NixFormatError && !e.message.startsWith("content address")) {
      throw new NixFormatError(`content address ${JSON.stringify(ca.slice(0, 120))}: ${e.message}`);
    }
    throw e;
  }
}
