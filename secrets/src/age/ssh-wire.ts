/**
 * Readers and writers for the SSH wire encoding (RFC 4251 §5): `string` and `mpint` values are a
 * 4-byte big-endian length followed by that many bytes. Public keys (`ssh-ed25519 AAAA…`) and
 * the OpenSSH private-key container are both built from these.
 */

export class WireReader {
  private offset = 0;
  private readonly bytes: Uint8Array;
  private readonly what: string;

  constructor(bytes: Uint8Array, what: string) {
    this.bytes = bytes;
    this.what = what;
  }

  uint32(): number {
    if (this.offset + 4 > this.bytes.length) throw new Error(`${this.what} is truncated`);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.offset, 4);
    this.offset += 4;
    return view.getUint32(0);
  }

  string(): Uint8Array {
    const length = this.uint32();
    if (this.offset + length > this.bytes.length) throw new Error(`${this.what} is truncated`);
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  text(): string {
    return new TextDecoder().decode(this.string());
  }

  raw(length: number): Uint8Array {
    if (this.offset + length > this.bytes.length) throw new Error(`${this.what} is truncated`);
    const value = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  get done(): boolean {
    return this.offset === this.bytes.length;
  }

  rest(): Uint8Array {
    const value = this.bytes.subarray(this.offset);
    this.offset = this.bytes.length;
    return value;
  }
}

export function wireString(value: Uint8Array | string): Uint8Array {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** An mpint as an unsigned big-endian magnitude (SSH adds a 0x00 byte when the top bit is set). */
export function mpintMagnitude(value: Uint8Array): Uint8Array {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  return value.subarray(start);
}

/** age uses standard base64 without padding, and rejects non-canonical encodings. */
export function b64encode(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

export function b64decode(text: string, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) throw new Error(`${what} is not unpadded base64`);
  const bytes = new Uint8Array(Buffer.from(text, "base64"));
  if (b64encode(bytes) !== text) throw new Error(`${what} is not canonical base64`);
  return bytes;
}
