/** NARs made in process, for tests and the bench that need ones of a chosen size. */

function narString(s: Buffer): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(s.length));
  return Buffer.concat([len, s, Buffer.alloc((8 - (s.length % 8)) % 8)]);
}

/** The NAR of a single regular file with these contents (what `nix-store --dump` writes for it). */
export function narOfFile(contents: Buffer): Buffer {
  const tokens = ["nix-archive-1", "(", "type", "regular", "contents"].map((t) => narString(Buffer.from(t)));
  return Buffer.concat([...tokens, narString(contents), narString(Buffer.from(")"))]);
}
