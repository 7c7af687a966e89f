import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fixturePathInfo } from "../../test/fixtures/nix/fixtures.ts";
import { NixFormatError } from "./errors.ts";
import { formatHex, formatNix32, formatSri, parseHash, sha256Equal, sha256FromDigest } from "./hash.ts";

const digest = createHash("sha256").update("larder").digest();
const h = sha256FromDigest(digest);

describe("parseHash / format*", () => {
  it("reads every spelling of the same digest", () => {
    const spellings = [
      formatHex(h),
      formatHex(h).toUpperCase().replace("SHA256", "sha256"),
      formatNix32(h),
      formatSri(h),
      `sha256:${digest.toString("base64")}`,
    ];
    for (const s of spellings) expect(sha256Equal(parseHash(s), h), s).toBe(true);
  });

  it("matches Nix's SRI and nix32 spellings of real NAR hashes", () => {
    const infos = fixturePathInfo("cache-zstd");
    expect(infos.length).toBeGreaterThan(0);
    for (const p of infos) {
      const fromSri = parseHash(p.narHash);
      expect(formatSri(fromSri)).toBe(p.narHash);
      // path-info reports the FileHash in SRI form; the NAR file name carries it in nix32.
      const file = parseHash(p.downloadHash!);
      expect(formatSri(file)).toBe(p.downloadHash);
      expect(p.url).toContain(formatNix32(file).slice("sha256:".length));
    }
  });

  it("formats as Nix prints", () => {
    expect(formatHex(h)).toBe(`sha256:${digest.toString("hex")}`);
    expect(formatSri(h)).toBe(`sha256-${digest.toString("base64")}`);
    expect(formatNix32(h)).toMatch(/^sha256:[0-9a-df-np-sv-z]{52}$/);
  });

  it("compares by digest", () => {
    const other = sha256FromDigest(createHash("sha256").update("other").digest());
    expect(sha256Equal(h, parseHash(formatNix32(h)))).toBe(true);
    expect(sha256Equal(h, other)).toBe(false);
  });

  it("rejects other algorithms as unsupported", () => {
    expect(() => parseHash(`sha512:${"0".repeat(128)}`)).toThrow(/unsupported hash algorithm/);
    expect(() => parseHash(`sha1-${Buffer.alloc(20).toString("base64")}`)).toThrow(/unsupported hash algorithm/);
    expect(() => parseHash(`md5:${"0".repeat(32)}`)).toThrow(/unsupported hash algorithm "md5"/);
    expect(() => parseHash(`blake3:${"0".repeat(64)}`)).toThrow(/unknown hash algorithm "blake3"/);
  });

  it("says what is wrong with a malformed hash", () => {
    const cases: [string, RegExp][] = [
      [digest.toString("hex"), /expected "sha256:<digest>"/],
      ["sha256:", /got 0/],
      [`sha256:${"g".repeat(64)}`, /not hexadecimal/],
      [`sha256:${"e".repeat(52)}`, /invalid Nix base32 character "e"/],
      [`sha256:${"0".repeat(63)}`, /got 63/],
      [`sha256-${digest.toString("base64").slice(1)}`, /44 base64 characters/],
      [`sha256-${digest.toString("hex")}`, /44 base64 characters/],
    ];
    for (const [s, re] of cases) {
      expect(() => parseHash(s), s).toThrow(NixFormatError);
      expect(() => parseHash(s), s).toThrow(re);
    }
  });

  it("insists on 32-byte digests", () => {
    expect(() => sha256FromDigest(Buffer.alloc(31))).toThrow(/32 bytes, got 31/);
  });
});
