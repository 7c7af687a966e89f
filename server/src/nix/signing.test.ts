import { describe, expect, it } from "vitest";
import { fixtureKey, fixtureNarInfos } from "../../test/fixtures/nix/fixtures.ts";
import { NixFormatError } from "./errors.ts";
import { fingerprint } from "./fingerprint.ts";
import { formatNix32, parseHash } from "./hash.ts";
import { parseNarInfo } from "./narinfo.ts";
import {
  formatPublicKey,
  formatSecretKey,
  generateSecretKey,
  parsePublicKey,
  parseSecretKey,
  publicKeyOf,
  signFingerprint,
  verifySignature,
} from "./signing.ts";

const KEYS = ["fixture-1", "fixture-2"] as const;
const narinfos = fixtureNarInfos().map((f) => ({ ...f, ni: parseNarInfo(f.text) }));
const fpOf = (ni: ReturnType<typeof parseNarInfo>) => fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references);

describe("fingerprint", () => {
  it("has Nix's layout", () => {
    const h = parseHash("sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
    const refs = ["5w4y7fqdr975lpnr3vmfavn6qdrmhvyl-fx-link", "kkghh5yr1q7icgffzyp7is78kf9hfk4k-fx-dep"];
    expect(fingerprint("/nix/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-fx-self", h, 168, refs)).toBe(
      `1;/nix/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-fx-self;${formatNix32(h)};168;` +
        "/nix/store/5w4y7fqdr975lpnr3vmfavn6qdrmhvyl-fx-link,/nix/store/kkghh5yr1q7icgffzyp7is78kf9hfk4k-fx-dep",
    );
    expect(fingerprint("/gnu/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-x", h, 1, [])).toBe(
      `1;/gnu/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-x;${formatNix32(h)};1;`,
    );
  });

  it("rejects inputs that cannot be a signed path", () => {
    const h = parseHash("sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
    const p = "/nix/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-fx-self";
    expect(() => fingerprint(p, h, 0, [])).toThrow(/positive integer/);
    expect(() => fingerprint(p, h, 1.5, [])).toThrow(NixFormatError);
    expect(() => fingerprint(p, h, 1, [p])).toThrow(/base name/);
    expect(() => fingerprint("relative-path", h, 1, [])).toThrow(NixFormatError);
  });
});

describe("signing against Nix 2.8", () => {
  it("reproduces every signature Nix made, byte for byte", () => {
    const sks = KEYS.map((k) => parseSecretKey(fixtureKey(k, "sec")));
    let compared = 0;
    for (const { file, ni } of narinfos) {
      const fp = fpOf(ni);
      // References go into the fingerprint in the narinfo's (sorted) order: that is the order Nix signed.
      expect(ni.sigs, file).toEqual(sks.map((sk) => signFingerprint(sk, fp)));
      compared += ni.sigs.length;
    }
    expect(compared).toBe(72);
  });

  it("verifies Nix's signatures with Nix's public keys", () => {
    const pks = KEYS.map((k) => parsePublicKey(fixtureKey(k, "pub")));
    for (const { ni } of narinfos) {
      const fp = fpOf(ni);
      for (const [i, pk] of pks.entries()) {
        expect(verifySignature(pk, fp, ni.sigs[i]!)).toBe(true);
        // The other key's signature, a changed size or another reference order must fail.
        expect(verifySignature(pk, fp, ni.sigs[1 - i]!)).toBe(false);
        expect(verifySignature(pk, fingerprint(ni.storePath, ni.narHash, ni.narSize + 1, ni.references), ni.sigs[i]!)).toBe(false);
        if (ni.references.length > 1) {
          const reversed = fingerprint(ni.storePath, ni.narHash, ni.narSize, [...ni.references].reverse());
          expect(verifySignature(pk, reversed, ni.sigs[i]!)).toBe(false);
        }
      }
    }
  });

  it("reads Nix's key files and derives Nix's public key", () => {
    for (const k of KEYS) {
      const sec = fixtureKey(k, "sec");
      const sk = parseSecretKey(sec);
      expect(sk.name).toBe(k);
      expect(sk.seed).toHaveLength(32);
      expect(formatSecretKey(sk)).toBe(sec);
      expect(formatPublicKey(publicKeyOf(sk))).toBe(fixtureKey(k, "pub"));
      expect(formatPublicKey(parsePublicKey(fixtureKey(k, "pub")))).toBe(fixtureKey(k, "pub"));
      expect(parseSecretKey(`${sec}\n`).name).toBe(k);
    }
  });
});

describe("keys made here", () => {
  it("sign and verify, and survive formatting", () => {
    const sk = generateSecretKey("larder-test-1");
    const again = parseSecretKey(formatSecretKey(sk));
    expect(again.seed.equals(sk.seed)).toBe(true);
    const pk = parsePublicKey(formatPublicKey(publicKeyOf(sk)));
    const sig = signFingerprint(sk, "1;x");
    expect(sig).toMatch(/^larder-test-1:[A-Za-z0-9+/]{86}==$/);
    expect(signFingerprint(again, "1;x")).toBe(sig);
    expect(verifySignature(pk, "1;x", sig)).toBe(true);
    expect(verifySignature(pk, "1;y", sig)).toBe(false);
    expect(verifySignature({ ...pk, name: "other" }, "1;x", sig)).toBe(false);
    expect(verifySignature(pk, "1;x", sig.replace("larder-test-1:", "larder-test-1:A"))).toBe(false);
    expect(verifySignature(pk, "1;x", "larder-test-1:!!!")).toBe(false);
    expect(verifySignature(pk, "1;x", "no-colon")).toBe(false);
  });

  it("verify Nix's signature with a Nix key and ours with the same key", () => {
    const sk = parseSecretKey(fixtureKey("fixture-1", "sec"));
    const { ni } = narinfos[0]!;
    const fp = fpOf(ni);
    const ours = signFingerprint(sk, fp);
    expect(verifySignature(parsePublicKey(fixtureKey("fixture-1", "pub")), fp, ours)).toBe(true);
    expect(verifySignature(publicKeyOf(sk), fp, ni.sigs[0]!)).toBe(true);
  });

  it("sign cheaply once the key is prepared", () => {
    const sk = generateSecretKey("speed");
    const n = 2000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) signFingerprint(sk, `1;/nix/store/x;${i}`);
    const perSign = Number(process.hrtime.bigint() - start) / n / 1000;
    // ~50 µs on the reference machine; a KeyObject rebuilt per call costs several times that.
    expect(perSign).toBeLessThan(250);
  });
});

describe("key parsing errors", () => {
  const sk = generateSecretKey("k");
  const raw = Buffer.concat([sk.seed, sk.publicKey]);

  it("rejects a secret key whose public half does not match its seed", () => {
    const other = generateSecretKey("k");
    const bad = `k:${Buffer.concat([sk.seed, other.publicKey]).toString("base64")}`;
    expect(() => parseSecretKey(bad)).toThrow(/public half does not belong to its seed/);
  });

  it("says what is wrong", () => {
    const cases: [string, RegExp][] = [
      [raw.toString("base64"), /expected "<name>:<base64>"/],
      [`:${raw.toString("base64")}`, /name "": must be non-empty/],
      [`a b:${raw.toString("base64")}`, /without ":" or whitespace/],
      [`k:${raw.subarray(0, 63).toString("base64")}`, /expected 64 bytes, got 63/],
      [`k:${raw.toString("base64").slice(0, -2)}`, /not canonical base64/],
      [`k:${raw.toString("base64url")}`, /not canonical base64/],
    ];
    for (const [s, re] of cases) expect(() => parseSecretKey(s), s).toThrow(re);
    expect(() => parsePublicKey(`k:${raw.toString("base64")}`)).toThrow(/expected 32 bytes, got 64/);
    expect(() => parsePublicKey("k:")).toThrow(/expected 32 bytes, got 0/);
    expect(() => generateSecretKey("a:b")).toThrow(NixFormatError);
    expect(() => formatSecretKey({ ...sk, name: "" })).toThrow(NixFormatError);
  });
});
