import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fixtureNarInfos, fixturePathInfo } from "../../test/fixtures/nix/fixtures.ts";
import { decodeNixBase32, encodeNixBase32, isNixBase32, nixBase32Length } from "./base32.ts";
import { NixFormatError } from "./errors.ts";

describe("Nix base32", () => {
  it("encodes Nix's NarHash from the digest Nix reports in SRI form", () => {
    const byPath = new Map(fixturePathInfo("store").map((p) => [p.path, p]));
    const infos = fixtureNarInfos();
    expect(infos.length).toBeGreaterThan(0);
    for (const { text } of infos) {
      const storePath = /^StorePath: (.*)$/m.exec(text)![1]!;
      const nix32 = /^NarHash: sha256:(.*)$/m.exec(text)![1]!;
      const sri = byPath.get(storePath)!.narHash;
      const digest = Buffer.from(sri.slice("sha256-".length), "base64");
      expect(encodeNixBase32(digest)).toBe(nix32);
      expect(Buffer.from(decodeNixBase32(nix32)).equals(digest)).toBe(true);
    }
  });

  it("uses a store path's hash as Nix spells it (20 bytes, 32 chars)", () => {
    for (const { text } of fixtureNarInfos()) {
      const hash = /^StorePath: \/nix\/store\/([^-]*)-/m.exec(text)![1]!;
      expect(decodeNixBase32(hash)).toHaveLength(20);
      expect(encodeNixBase32(decodeNixBase32(hash))).toBe(hash);
    }
  });

  it("knows the lengths Nix uses", () => {
    expect(nixBase32Length(32)).toBe(52);
    expect(nixBase32Length(20)).toBe(32);
    expect(nixBase32Length(64)).toBe(103);
    expect(nixBase32Length(1)).toBe(2);
    expect(nixBase32Length(0)).toBe(0);
    expect(() => nixBase32Length(-1)).toThrow(RangeError);
  });

  it("round-trips every length and random content", () => {
    for (let n = 0; n <= 70; n++) {
      const bytes = randomBytes(n);
      const s = encodeNixBase32(bytes);
      expect(s).toHaveLength(nixBase32Length(n));
      expect(isNixBase32(s)).toBe(true);
      expect(Buffer.from(decodeNixBase32(s)).equals(bytes)).toBe(true);
    }
  });

  it("encodes a digest of known input (sha256 of the empty string)", () => {
    // Independent of the encoder: this spelling is what `nix hash file` prints for an empty file.
    const d = createHash("sha256").update("").digest();
    expect(encodeNixBase32(d)).toBe("0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
  });

  it("rejects characters outside the alphabet", () => {
    const good = encodeNixBase32(randomBytes(32));
    for (const bad of ["e", "o", "u", "t", "A", "-", "é"]) {
      const s = good.slice(0, 10) + bad + good.slice(11);
      expect(() => decodeNixBase32(s)).toThrow(NixFormatError);
    }
    expect(() => decodeNixBase32(good.slice(0, 10) + "e" + good.slice(11))).toThrow(/character "e"/);
  });

  it("rejects lengths that encode no whole number of bytes", () => {
    expect(() => decodeNixBase32("0")).toThrow(/length 1/);
    expect(() => decodeNixBase32("0".repeat(51))).toThrow(NixFormatError);
  });

  it("rejects a leading character with bits beyond the byte length", () => {
    // 52 chars carry 260 bits for 256: the first character may only be 0 or 1.
    const rest = "0".repeat(51);
    expect(decodeNixBase32("1" + rest)[31]).toBe(0x80);
    expect(() => decodeNixBase32("2" + rest)).toThrow(/bits beyond/);
    expect(() => decodeNixBase32("z" + rest)).toThrow(NixFormatError);
  });
});
