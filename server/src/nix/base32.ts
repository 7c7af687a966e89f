import { NixFormatError } from "./errors.ts";

// Nix's base32 drops e, o, u and t from the usual alphabet (to avoid accidental words) and
// emits the characters from the most significant 5-bit group down, with bits taken LSB-first
// from the byte array. It is not RFC 4648 base32.
const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;

/** Number of characters Nix uses for `byteLength` bytes (52 for SHA-256, 32 for a store path hash). */
export function nixBase32Length(byteLength: number): number {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
    throw new RangeError(`byte length must be a non-negative integer, got ${byteLength}`);
  }
  return byteLength === 0 ? 0 : Math.floor((byteLength * 8 - 1) / 5) + 1;
}

export function encodeNixBase32(bytes: Uint8Array): string {
  const len = nixBase32Length(bytes.length);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

/** True if every character is in Nix's base32 alphabet (says nothing about the length). */
export function isNixBase32(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 128 || DIGIT[c] === -1) return false;
  }
  return true;
}

export function decodeNixBase32(s: string): Uint8Array {
  const size = Math.floor((s.length * 5) / 8);
  if (nixBase32Length(size) !== s.length) {
    throw new NixFormatError(`invalid Nix base32 string: length ${s.length} does not encode a whole number of bytes`);
  }
  const out = new Uint8Array(size);
  for (let n = 0; n < s.length; n++) {
    const ch = s.charCodeAt(s.length - n - 1);
    const digit = ch < 128 ? DIGIT[ch]! : -1;
    if (digit === -1) {
      throw new NixFormatError(
        `invalid Nix base32 character ${JSON.stringify(s[s.length - n - 1])} (allowed: ${ALPHABET})`,
      );
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1]! |= carry;
    else if (carry !== 0) {
      // The first character carries more bits than the byte length holds; Nix rejects that
      // too, so every byte string has exactly one spelling.
      throw new NixFormatError("invalid Nix base32 string: the first character has bits beyond the encoded length");
    }
  }
  return out;
}
