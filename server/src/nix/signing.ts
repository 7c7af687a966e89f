import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { NixFormatError } from "./errors.ts";

/** A Nix signing key: `name:base64(seed ‖ public key)` on disk, as `nix key generate-secret` writes it. */
export interface SecretKey {
  name: string;
  seed: Buffer;
  publicKey: Buffer;
}

/** A Nix public key: `name:base64(32-byte Ed25519 key)`, as listed in trusted-public-keys. */
export interface PublicKey {
  name: string;
  key: Buffer;
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed (PKCS#8) or public key (SPKI).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

// Building a KeyObject costs far more than an Ed25519 signature; keep one per key object.
const privateKeys = new WeakMap<SecretKey, KeyObject>();
const publicKeys = new WeakMap<PublicKey, KeyObject>();

function checkKeyName(name: string, what: string): void {
  if (name === "" || /[:\s]/.test(name)) {
    throw new NixFormatError(`invalid ${what} name ${JSON.stringify(name)}: must be non-empty, without ":" or whitespace`);
  }
}

function decodeBase64(s: string, bytes: number, what: string): Buffer {
  const buf = Buffer.from(s, "base64");
  if (!B64_RE.test(s) || s.length % 4 !== 0 || buf.toString("base64") !== s) {
    throw new NixFormatError(`invalid ${what}: the part after ":" is not canonical base64`);
  }
  if (buf.length !== bytes) throw new NixFormatError(`invalid ${what}: expected ${bytes} bytes, got ${buf.length}`);
  return buf;
}

function splitNamed(s: string, what: string): [string, string] {
  const colon = s.indexOf(":");
  if (colon < 0) throw new NixFormatError(`invalid ${what}: expected "<name>:<base64>"`);
  const name = s.slice(0, colon);
  checkKeyName(name, what);
  return [name, s.slice(colon + 1)];
}

function privateKeyObject(sk: SecretKey): KeyObject {
  let ko = privateKeys.get(sk);
  if (!ko) {
    ko = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, sk.seed]), format: "der", type: "pkcs8" });
    privateKeys.set(sk, ko);
  }
  return ko;
}

function publicKeyObject(pk: PublicKey): KeyObject {
  let ko = publicKeys.get(pk);
  if (!ko) {
    ko = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pk.key]), format: "der", type: "spki" });
    publicKeys.set(pk, ko);
  }
  return ko;
}


export function parseSecretKey(s: string): SecretKey {
  const trimmed = s.trim();
  const [name, b64] = splitNamed(trimmed, "secret key");
  const raw = decodeBase64(b64, 64, "secret key");
  const sk: SecretKey = { name, seed: Buffer.from(raw.subarray(0, 32)), publicKey: Buffer.from(raw.subarray(32)) };
  const ko = privateKeyObject(sk);
  const derived = createPublicKey(ko).export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
  // A mismatched public half would make us sign with one key and advertise another.
  if (!derived.equals(sk.publicKey)) {
    throw new NixFormatError(`invalid secret key "${name}": its public half does not belong to its seed`);
  }
  return sk;
}

export function formatSecretKey(sk: SecretKey): string {
  checkKeyName(sk.name, "secret key");
  return `${sk.name}:${Buffer.concat([sk.seed, sk.publicKey]).toString("base64")}`;
}

export function parsePublicKey(s: string): PublicKey {
  const [name, b64] = splitNamed(s.trim(), "public key");
  return { name, key: decodeBase64(b64, 32, "public key") };
}

export function formatPublicKey(pk: PublicKey): string {
  checkKeyName(pk.name, "public key");
  return `${pk.name}:${pk.key.toString("base64")}`;
}

export function generateSecretKey(name: string): SecretKey {
  checkKeyName(name, "secret key");
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length);
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
  const sk: SecretKey = { name, seed: Buffer.from(seed), publicKey: Buffer.from(pub) };
  privateKeys.set(sk, privateKey);
  return sk;
}

export function publicKeyOf(sk: SecretKey): PublicKey {
  return { name: sk.name, key: Buffer.from(sk.publicKey) };
}

/** Signs a fingerprint (see fingerprint.ts); returns the narinfo `Sig:` value `name:base64`. */
export function signFingerprint(sk: SecretKey, fp: string): string {
  const sig = sign(null, Buffer.from(fp, "utf8"), privateKeyObject(sk));
  return `${sk.name}:${sig.toString("base64")}`;
}

/** True if `sig` (`name:base64`) is by this key (same name) and valid for the fingerprint. */
export function verifySignature(pk: PublicKey, fp: string, sig: string): boolean {
  const colon = sig.indexOf(":");
  if (colon < 0 || sig.slice(0, colon) !== pk.name) return false;
  const b64 = sig.slice(colon + 1);
  if (!B64_RE.test(b64)) return false;
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 64) return false;
  return verify(null, Buffer.from(fp, "utf8"), publicKeyObject(pk), raw);
}
