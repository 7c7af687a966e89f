import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, fixtureNarInfos } from "../../test/fixtures/nix/fixtures.ts";
import {
  compressionFromMagic,
  compressionFromNarExtension,
  NIX_COMPRESSIONS,
  narExtension,
  parseCompression,
} from "./compression.ts";
import { NixFormatError } from "./errors.ts";
import { parseNarInfo } from "./narinfo.ts";

describe("compression names and NAR file names", () => {
  it("matches the URLs and bytes Nix wrote for each compression", () => {
    const infos = fixtureNarInfos();
    expect(new Set(infos.map((i) => i.cache))).toEqual(new Set(["none", "zstd", "xz", "gzip"]));
    for (const { cache, file } of infos) {
      const ni = parseNarInfo(readFileSync(file, "utf8"));
      const c = parseCompression(ni.compression);
      expect(c).toBe(cache);
      expect(ni.url.endsWith(narExtension(c))).toBe(true);
      // Nix 2.8 names gzip NARs ".nar": the name alone says "none", the bytes say gzip.
      expect(compressionFromNarExtension(ni.url)).toBe(c === "gzip" ? "none" : c);
      const bytes = readFileSync(path.join(path.dirname(file), ni.url));
      expect(compressionFromMagic(bytes)).toBe(c);
    }
  });

  it("names every Nix 2.8 compression", () => {
    const ext = Object.fromEntries(NIX_COMPRESSIONS.map((c) => [c, narExtension(c)]));
    expect(ext).toEqual({
      none: ".nar", gzip: ".nar", xz: ".nar.xz", bzip2: ".nar.bz2", br: ".nar.br", zstd: ".nar.zst", lz4: ".nar.lz4", lzip: ".nar.lzip",
    });
    for (const c of NIX_COMPRESSIONS) {
      expect(parseCompression(c)).toBe(c);
      if (c !== "gzip") expect(compressionFromNarExtension(`nar/x${narExtension(c)}`)).toBe(c);
    }
  });

  it("rejects unknown names", () => {
    expect(() => parseCompression("bogus")).toThrow(NixFormatError);
    expect(() => parseCompression("XZ")).toThrow(/unknown compression method "XZ"/);
    expect(() => parseCompression("")).toThrow(NixFormatError);
    for (const f of ["nar/x.narinfo", "nar/x.nar.gz", "nar/x.nar.zstd", "x.tar", ".nar", "nar/x.nar.xz.tmp"]) {
      expect(compressionFromNarExtension(f), f).toBeUndefined();
    }
  });

  it("does not mistake random bytes for a compressed stream", () => {
    expect(compressionFromMagic(Buffer.from("hello world"))).toBeUndefined();
    expect(compressionFromMagic(new Uint8Array(0))).toBeUndefined();
    const nars = readdirSync(path.join(FIXTURES, "nars"));
    for (const f of nars) expect(compressionFromMagic(readFileSync(path.join(FIXTURES, "nars", f)))).toBe("none");
  });
});
