/**
 * Parsing of the key formats larder-secrets accepts:
 * - recipients: `age1…` (X25519), `ssh-ed25519 AAAA… [comment]`, `ssh-rsa AAAA… [comment]`;
 * - identities: an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments), an unencrypted
 *   OpenSSH private key (ed25519 or rsa), or a PEM RSA key.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { Encrypter, identityToRecipient, type Identity, type Recipient } from "age-encryption";
import { SshEd25519Identity, SshEd25519Recipient } from "./ssh-ed25519.ts";
import { SshRsaIdentity, SshRsaRecipient } from "./ssh-rsa.ts";
import { concatBytes, WireReader, wireString } from "./ssh-wire.ts";

export type KeyType = "X25519" | "ssh-ed25519" | "ssh-rsa";

export interface ParsedRecipient {
  type: KeyType;
  /** The key without its comment: what is compared when deciding whether files are up to date. */
  canonical: string;
  recipient: string | Recipient;
}

export function parseRecipient(text: string): ParsedRecipient {
  const fields = text.trim().split(/\s+/);
  const [kind, blob] = fields;
  if (kind === undefined || kind === "") throw new Error("empty public key");
  if (kind.startsWith("age1")) {
    // bech32: the human-readable part ends at the last "1" (the data alphabet has none), so an X25519
    // key may well start "age1pq…"; only the "age1pq" part marks a post-quantum one.
    if (kind.slice(0, kind.lastIndexOf("1")).toLowerCase() === "age1pq") {
      throw new Error(`${kind.slice(0, 12)}…: post-quantum age recipients cannot be read by age 1.1 hosts; use an X25519 (age-keygen) or ssh key`);
    }
    try {
      new Encrypter().addRecipient(kind);
    } catch {
      throw new Error(`${kind}: not a valid age X25519 recipient`);
    }
    return { type: "X25519", canonical: kind, recipient: kind };
  }
  if (kind !== "ssh-ed25519" && kind !== "ssh-rsa") {
    throw new Error(`${text.slice(0, 24)}…: unsupported key type; use age1…, ssh-ed25519 or ssh-rsa`);
  }
  if (blob === undefined || !/^[A-Za-z0-9+/]+=*$/.test(blob)) throw new Error(`${kind} key has no base64 key data`);
  const wire = new Uint8Array(Buffer.from(blob, "base64"));
  const reader = new WireReader(wire, `${kind} public key`);
  if (reader.text() !== kind) throw new Error(`${kind} key data is for another key type`);
  if (kind === "ssh-ed25519") {
    const pk = reader.string();
    if (pk.length !== 32 || !reader.done) throw new Error("ssh-ed25519 key data is malformed");
    return { type: kind, canonical: `${kind} ${blob}`, recipient: new SshEd25519Recipient(wire, pk) };
  }
  const e = reader.string();
  const n = reader.string();
  if (!reader.done) throw new Error("ssh-rsa key data is malformed");
  return { type: kind, canonical: `${kind} ${blob}`, recipient: new SshRsaRecipient(wire, e, n) };
}

export interface ParsedIdentity {
  identity: string | Identity;
  /** The matching public key, to name it in messages. */
  publicKey: string;
}

const OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC = new TextEncoder().encode("openssh-key-v1\0");

/** Parses the contents of an identity file; `path` only names it in errors. */
export async function parseIdentityFile(text: string, path: string): Promise<ParsedIdentity[]> {
  const trimmed = text.trim();
  if (trimmed.startsWith(OPENSSH_BEGIN)) return [parseOpenSshKey(trimmed, path)];
  if (/^-----BEGIN (RSA )?PRIVATE KEY-----/.test(trimmed)) return [parsePemRsa(trimmed, path)];
  if (trimmed.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----") || /Proc-Type: 4,ENCRYPTED/.test(trimmed)) {
    throw new Error(`${path} is passphrase-protected, which larder-secrets cannot read; use an age identity (age-keygen) or an unencrypted key with -i`);
  }
  const identities: ParsedIdentity[] = [];
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!line.startsWith("AGE-SECRET-KEY-1")) {
      throw new Error(`${path}:${index + 1}: not an age identity (AGE-SECRET-KEY-1…) or ssh private key`);
    }
    let publicKey: string;
    try {
      publicKey = await identityToRecipient(line);
    } catch {
      throw new Error(`${path}:${index + 1}: malformed age identity`);
    }
    identities.push({ identity: line, publicKey });
  }
  if (identities.length === 0) throw new Error(`${path} holds no identity`);
  return identities;
}

function parseOpenSshKey(armored: string, path: string): ParsedIdentity {
  const body = armored.slice(OPENSSH_BEGIN.length, armored.indexOf(OPENSSH_END)).replace(/\s+/g, "");
  const bytes = new Uint8Array(Buffer.from(body, "base64"));
  const what = `ssh key ${path}`;
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new Error(`${what} is not in openssh-key-v1 format`);
  const outer = new WireReader(bytes.subarray(MAGIC.length), what);
  const cipher = outer.text();
  outer.text(); // kdf name
  outer.string(); // kdf options
  if (cipher !== "none") {
    throw new Error(`${path} is passphrase-protected, which larder-secrets cannot read; use an age identity (age-keygen) or an unencrypted key with -i`);
  }
  if (outer.uint32() !== 1) throw new Error(`${what} holds more than one key`);
  const wire = outer.string();
  const inner = new WireReader(outer.string(), what);
  if (inner.uint32() !== inner.uint32()) throw new Error(`${what} is corrupt (check bytes differ)`);
  const type = inner.text();
  const publicKey = `${type} ${Buffer.from(wire).toString("base64")}`;
  if (type === "ssh-ed25519") {
    inner.string(); // public key, repeated
    const secret = inner.string();
    if (secret.length !== 64) throw new Error(`${what} has a malformed ed25519 secret`);
    return { identity: new SshEd25519Identity(wire, secret.subarray(0, 32)), publicKey };
  }
  if (type === "ssh-rsa") {
    const n = inner.string();
    const e = inner.string();
    const d = inner.string();
    const iqmp = inner.string();
    const p = inner.string();
    const q = inner.string();
    return { identity: new SshRsaIdentity(wire, { n, e, d, iqmp, p, q }), publicKey };
  }
  throw new Error(`${what} is a ${type} key; only ssh-ed25519 and ssh-rsa keys can be age identities`);
}

function parsePemRsa(pem: string, path: string): ParsedIdentity {
  let key;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error(`${path} is not a readable unencrypted PEM private key`);
  }
  if (key.asymmetricKeyType !== "rsa") throw new Error(`${path} is not an RSA key`);
  const jwk = createPublicKey(key).export({ format: "jwk" });
  const e = new Uint8Array(Buffer.from(jwk.e ?? "", "base64url"));
  const n = new Uint8Array(Buffer.from(jwk.n ?? "", "base64url"));
  // SSH mpints are signed, so a leading 1 bit needs a zero byte in front.
  const mpint = (v: Uint8Array) => ((v[0] ?? 0) & 0x80 ? concatBytes(new Uint8Array([0]), v) : v);
  const wire = concatBytes(wireString("ssh-rsa"), wireString(mpint(e)), wireString(mpint(n)));
  return { identity: new SshRsaIdentity(wire, key), publicKey: `ssh-rsa ${Buffer.from(wire).toString("base64")}` };
}
