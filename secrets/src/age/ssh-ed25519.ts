/**
 * The age spec's `ssh-ed25519` recipient type (age-encryption.org/v1, "ssh-ed25519 recipient
 * stanza"), which typage 0.3.1 does not ship. A stanza looks like
 *
 *     -> ssh-ed25519 <tag> <ephemeral share>
 *     <ChaCha20-Poly1305(wrap key, file key)>
 *
 * where tag = base64(SHA-256(ssh wire public key)[:4]). The Ed25519 key is used through its
 * Curve25519 (Montgomery) form, and the X25519 result is "tweaked" by a scalar derived from the
 * whole SSH public key, so the stanza is bound to that key's encoding:
 *
 *     tweak    = HKDF-SHA-256(ikm = "", salt = ssh wire key, info = LABEL)
 *     shared   = X25519(tweak, X25519(ephemeral, montgomery(pk)))
 *     wrap key = HKDF-SHA-256(ikm = shared, salt = share ‖ montgomery(pk), info = LABEL)
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { randomBytes } from "node:crypto";
import { Stanza, type Identity, type Recipient } from "age-encryption";
import { b64decode, b64encode, concatBytes } from "./ssh-wire.ts";

const LABEL = new TextEncoder().encode("age-encryption.org/v1/ssh-ed25519");
const FILE_KEY_SIZE = 16;
const NONCE = new Uint8Array(12);

/** The 4-byte key tag every ssh-* stanza carries, so identities can skip stanzas not meant for them. */
export function sshKeyTag(wireKey: Uint8Array): string {
  return b64encode(sha256(wireKey).subarray(0, 4));
}

function tweakFor(wireKey: Uint8Array): Uint8Array {
  return hkdf(sha256, new Uint8Array(0), wireKey, LABEL, 32);
}

export class SshEd25519Recipient implements Recipient {
  private readonly wireKey: Uint8Array;
  private readonly montgomery: Uint8Array;

  /** `wireKey` is the SSH wire encoding; `publicKey` the raw 32-byte Ed25519 key inside it. */
  constructor(wireKey: Uint8Array, publicKey: Uint8Array) {
    this.wireKey = wireKey;
    this.montgomery = ed25519.utils.toMontgomery(publicKey);
  }

  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    const ephemeral = new Uint8Array(randomBytes(32));
    const share = x25519.getPublicKey(ephemeral);
    const shared = x25519.getSharedSecret(tweakFor(this.wireKey), x25519.getSharedSecret(ephemeral, this.montgomery));
    const wrapKey = hkdf(sha256, shared, concatBytes(share, this.montgomery), LABEL, 32);
    const body = chacha20poly1305(wrapKey, NONCE).encrypt(fileKey);
    return [new Stanza(["ssh-ed25519", sshKeyTag(this.wireKey), b64encode(share)], body)];
  }
}

export class SshEd25519Identity implements Identity {
  private readonly wireKey: Uint8Array;
  private readonly tag: string;
  private readonly scalar: Uint8Array;
  private readonly montgomery: Uint8Array;

  /** `seed` is the 32-byte Ed25519 private seed (the first half of OpenSSH's 64-byte field). */
  constructor(wireKey: Uint8Array, seed: Uint8Array) {
    this.wireKey = wireKey;
    this.tag = sshKeyTag(wireKey);
    // Ed25519 signs with the first half of SHA-512(seed); X25519 clamps the same bytes.
    this.scalar = sha512(seed).subarray(0, 32);
    this.montgomery = x25519.getPublicKey(this.scalar);
  }

  unwrapFileKey(stanzas: Stanza[]): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== "ssh-ed25519") continue;
      if (stanza.args.length !== 3) throw new Error("invalid ssh-ed25519 stanza: wrong number of arguments");
      if (stanza.args[1] !== this.tag) continue;
      const share = b64decode(stanza.args[2] ?? "", "ssh-ed25519 stanza share");
      if (share.length !== 32) throw new Error("invalid ssh-ed25519 stanza: share is not 32 bytes");
      if (stanza.body.length !== FILE_KEY_SIZE + 16) throw new Error("invalid ssh-ed25519 stanza: wrong body size");
      let shared: Uint8Array;
      try {
        shared = x25519.getSharedSecret(this.scalar, share);
      } catch {
        throw new Error("invalid ssh-ed25519 stanza: low-order share");
      }
      shared = x25519.getSharedSecret(tweakFor(this.wireKey), shared);
      const wrapKey = hkdf(sha256, shared, concatBytes(share, this.montgomery), LABEL, 32);
      try {
        return chacha20poly1305(wrapKey, NONCE).decrypt(stanza.body);
      } catch {
        // A tag collision with another key: not ours, keep looking (as age does).
        continue;
      }
    }
    return null;
  }
}
