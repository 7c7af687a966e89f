/**
 * The age spec's `ssh-rsa` recipient type: the file key is RSA-OAEP-SHA-256 encrypted with the
 * label "age-encryption.org/v1/ssh-rsa". A stanza is `-> ssh-rsa <tag>` plus the ciphertext.
 * node:crypto does the RSA; keys are handed over as JWK built from the SSH fields.
 */
import { constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from "node:crypto";
import { Stanza, type Identity, type Recipient } from "age-encryption";
import { sshKeyTag } from "./ssh-ed25519.ts";
import { mpintMagnitude } from "./ssh-wire.ts";

const LABEL = Buffer.from("age-encryption.org/v1/ssh-rsa");

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString("hex")}`);
}

function fromBigInt(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return new Uint8Array(Buffer.from(hex, "hex"));
}

export class SshRsaRecipient implements Recipient {
  private readonly tag: string;
  private readonly key: KeyObject;

  constructor(wireKey: Uint8Array, e: Uint8Array, n: Uint8Array) {
    this.tag = sshKeyTag(wireKey);
    this.key = createPublicKey({
      key: { kty: "RSA", n: b64url(mpintMagnitude(n)), e: b64url(mpintMagnitude(e)) },
      format: "jwk",
    });
  }

  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    const body = publicEncrypt(
      { key: this.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: LABEL },
      fileKey,
    );
    return [new Stanza(["ssh-rsa", this.tag], new Uint8Array(body))];
  }
}

export interface RsaPrivateFields {
  n: Uint8Array;
  e: Uint8Array;
  d: Uint8Array;
  iqmp: Uint8Array;
  p: Uint8Array;
  q: Uint8Array;
}

export class SshRsaIdentity implements Identity {
  private readonly tag: string;
  private readonly key: KeyObject;

  constructor(wireKey: Uint8Array, key: KeyObject | RsaPrivateFields) {
    this.tag = sshKeyTag(wireKey);
    if ("n" in key) {
      // OpenSSH stores n, e, d, iqmp, p, q; JWK also wants d mod (p-1) and d mod (q-1).
      const d = toBigInt(mpintMagnitude(key.d));
      const p = toBigInt(mpintMagnitude(key.p));
      const q = toBigInt(mpintMagnitude(key.q));
      this.key = createPrivateKey({
        key: {
          kty: "RSA",
          n: b64url(mpintMagnitude(key.n)),
          e: b64url(mpintMagnitude(key.e)),
          d: b64url(fromBigInt(d)),
          p: b64url(fromBigInt(p)),
          q: b64url(fromBigInt(q)),
          dp: b64url(fromBigInt(d % (p - 1n))),
          dq: b64url(fromBigInt(d % (q - 1n))),
          qi: b64url(mpintMagnitude(key.iqmp)),
        },
        format: "jwk",
      });
    } else {
      this.key = key;
    }
  }

  unwrapFileKey(stanzas: Stanza[]): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== "ssh-rsa") continue;
      if (stanza.args.length !== 2) throw new Error("invalid ssh-rsa stanza: wrong number of arguments");
      if (stanza.args[1] !== this.tag) continue;
      try {
        return new Uint8Array(
          privateDecrypt(
            { key: this.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: LABEL },
            stanza.body,
          ),
        );
      } catch {
        continue;
      }
    }
    return null;
  }
}
