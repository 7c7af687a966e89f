import { describe, expect, it } from "vitest";
import { fixturePathInfo } from "../../test/fixtures/nix/fixtures.ts";
import { NixFormatError } from "./errors.ts";
import { isStorePathHash, isValidStoreDir, parseBaseName, parseStorePath, STORE_PATH_HASH_LENGTH } from "./store-path.ts";

const HASH = "kkghh5yr1q7icgffzyp7is78kf9hfk4k";

describe("store paths", () => {
  it("parses every path, reference and deriver Nix produced", () => {
    const infos = fixturePathInfo("store");
    expect(infos.length).toBeGreaterThan(0);
    for (const p of infos) {
      for (const sp of [p.path, ...p.references, ...(p.deriver ? [p.deriver] : [])]) {
        const parsed = parseStorePath(sp);
        expect(parsed.storeDir).toBe("/nix/store");
        expect(`${parsed.storeDir}/${parsed.hash}-${parsed.name}`).toBe(sp);
        expect(parsed.baseName).toBe(sp.slice("/nix/store/".length));
        expect(isStorePathHash(parsed.hash)).toBe(true);
      }
    }
    // The fixture name uses every punctuation character Nix allows.
    expect(infos.some((p) => p.path.endsWith("-fx-tree_1.0+x=y?"))).toBe(true);
  });

  it("checks the hash part", () => {
    expect(STORE_PATH_HASH_LENGTH).toBe(32);
    expect(isStorePathHash(HASH)).toBe(true);
    expect(isStorePathHash(HASH.slice(1))).toBe(false);
    expect(isStorePathHash(`${HASH.slice(1)}e`)).toBe(false);
    expect(isStorePathHash(HASH.toUpperCase())).toBe(false);
    expect(() => parseBaseName(`${HASH.slice(1)}u-x`)).toThrow(/outside Nix base32/);
    expect(() => parseBaseName(`${HASH}x`)).toThrow(/expected "<32-character hash>-<name>"/);
    expect(() => parseBaseName(HASH.slice(0, 20))).toThrow(NixFormatError);
  });

  it("applies Nix's name rules", () => {
    expect(parseBaseName(`${HASH}-a`)).toEqual({ hash: HASH, name: "a" });
    expect(parseBaseName(`${HASH}-${"x".repeat(211)}`).name).toHaveLength(211);
    expect(parseBaseName(`${HASH}-a.-_+?=1`).name).toBe("a.-_+?=1");
    expect(() => parseBaseName(`${HASH}-`)).toThrow(NixFormatError);
    expect(() => parseBaseName(`${HASH}-${"x".repeat(212)}`)).toThrow(/212 characters long, the limit is 211/);
    expect(() => parseBaseName(`${HASH}-.hidden`)).toThrow(/starts with a period/);
    expect(() => parseBaseName(`${HASH}-..`)).toThrow(/starts with a period/);
    for (const bad of ["a b", "a/b", "a:b", "é", "a\nb", "a*"]) {
      expect(() => parseBaseName(`${HASH}-${bad}`), bad).toThrow(/outside \[A-Za-z0-9\+-\._\?=\]/);
    }
  });

  it("checks the store directory", () => {
    expect(parseStorePath(`/gnu/store/${HASH}-x`, "/gnu/store").storeDir).toBe("/gnu/store");
    expect(() => parseStorePath(`/gnu/store/${HASH}-x`)).toThrow(/not directly inside the store directory \/nix\/store/);
    expect(() => parseStorePath(`/nix/store/sub/${HASH}-x`)).toThrow(/not directly inside/);
    expect(() => parseStorePath(`${HASH}-x`)).toThrow(/not directly inside/);
    expect(() => parseStorePath(`/nix/store/${HASH}-x`, "/nix/store/")).toThrow(/invalid store directory/);
  });

  it("validates store directories", () => {
    for (const ok of ["/nix/store", "/a", "/srv/nix-2/store"]) expect(isValidStoreDir(ok), ok).toBe(true);
    for (const bad of ["", "/", "nix/store", "/nix/store/", "/nix//store", "/nix/../store", "/nix/./store", "/nix/.."]) {
      expect(isValidStoreDir(bad), bad).toBe(false);
    }
  });
});
