/**
 * The narinfo a cache serves for one of its objects: the stored NAR's URL and hashes, the
 * uploader's metadata, our signature first (made once per object and key version, then
 * stored), and the uploader's own signatures by other keys after it.
 */
import type { CacheRow } from "./db/caches.ts";
import type { ObjectSignature, ObjectWithNar } from "./db/objects.ts";
import { fingerprint } from "./nix/fingerprint.ts";
import { sha256FromDigest, type Sha256 } from "./nix/hash.ts";
import { checkCa, checkDeriver, checkSig, checkSystem, renderNarInfo, type NarInfo } from "./nix/narinfo.ts";
import { parseSecretKey, publicKeyOf, signFingerprint, formatPublicKey, type SecretKey } from "./nix/signing.ts";
import { decodeNixBase32 } from "./nix/base32.ts";
import { storedExtension } from "./ingest/codecs.ts";
import type { StoredCompression } from "./config/load.ts";

const secretKeys = new Map<string, SecretKey>();

/** The cache's parsed key, memoised by its text so a KeyObject is built once per key. */
export function cacheSecretKey(cache: CacheRow): SecretKey {
  let sk = secretKeys.get(cache.keypair);
  if (!sk) {
    sk = parseSecretKey(cache.keypair);
    if (secretKeys.size > 10_000) secretKeys.clear();
    secretKeys.set(cache.keypair, sk);
  }
  return sk;
}

export function cachePublicKey(cache: CacheRow): string {
  return formatPublicKey(publicKeyOf(cacheSecretKey(cache)));
}

/** The cache's signature of a path's fingerprint, with the key version it was made by. */
export function signatureOf(cache: CacheRow, fingerprint: string): ObjectSignature {
  return { value: signFingerprint(cacheSecretKey(cache), fingerprint), keyVersion: cache.key_version };
}

/** The cache's signature of a path being committed. */
export function signatureFor(cache: CacheRow, storePath: string, narHash: Sha256, narSize: number, references: readonly string[]): ObjectSignature {
  return signatureOf(cache, fingerprint(storePath, narHash, narSize, references));
}

export interface RenderedNarInfo {
  text: string;
  /** Set when the signature had to be made now; the caller stores it for next time. */
  newSignature: string | undefined;
}

/**
 * Whether a stored unsigned field may be served. Both push protocols now refuse what fails
 * (issue 13.6), but rows written before could hold a line break or a bogus CA; such a field is
 * left out (the signature does not cover it) rather than failing every request for the path.
 */
function passes(check: (v: string) => void, value: string): boolean {
  try {
    check(value);
    return true;
  } catch {
    return false;
  }
}

export function narInfoFor(cache: CacheRow, found: ObjectWithNar): RenderedNarInfo {
  const { object, nar } = found;
  const references = JSON.parse(object.refs) as string[];
  const narHash = sha256FromDigest(Buffer.from(nar.nar_hash, "hex"));
  const sk = cacheSecretKey(cache);
  let signature = object.signature_key_version === cache.key_version ? object.signature : null;
  let newSignature: string | undefined;
  if (signature === null) {
    signature = signatureFor(cache, object.store_path, narHash, nar.nar_size, references).value;
    newSignature = signature;
  }
  const uploaded = (JSON.parse(object.sigs) as string[]).filter((s) => !s.startsWith(`${sk.name}:`));
  const info: NarInfo = {
    storePath: object.store_path,
    url: `nar/${nar.file_hash}${storedExtension(nar.compression as StoredCompression)}`,
    compression: nar.compression,
    fileHash: sha256FromDigest(decodeNixBase32(nar.file_hash)),
    fileSize: nar.file_size,
    narHash,
    narSize: nar.nar_size,
    references,
    ...(object.deriver !== null && passes(checkDeriver, object.deriver) && { deriver: object.deriver }),
    ...(object.system !== null && passes(checkSystem, object.system) && { system: object.system }),
    sigs: [signature, ...uploaded.filter((s) => passes(checkSig, s))],
    ...(object.ca !== null && passes(checkCa, object.ca) && { ca: object.ca }),
  };
  return { text: renderNarInfo(info), newSignature };
}
