import { describe, expect, it } from "vitest";
import { fixtureNarInfos, fixturePathInfo } from "../../test/fixtures/nix/fixtures.ts";
import { NarInfoError } from "./errors.ts";
import { formatNix32, formatSri, parseHash, sha256Equal } from "./hash.ts";
import { type NarInfo, parseNarInfo, renderNarInfo } from "./narinfo.ts";

const H1 = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
const REF_A = "5w4y7fqdr975lpnr3vmfavn6qdrmhvyl-fx-link";
const REF_B = "kkghh5yr1q7icgffzyp7is78kf9hfk4k-fx-dep";

function minimal(extra = ""): string {
  return `StorePath: /nix/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-fx-self\nURL: nar/x.nar\nNarHash: ${H1}\nNarSize: 168\n${extra}`;
}

function fieldOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof NarInfoError) return e.field;
    throw e;
  }
  throw new Error("expected a NarInfoError");
}

describe("narinfo from Nix 2.8", () => {
  const infos = fixtureNarInfos();

  it("re-renders every narinfo Nix wrote byte for byte", () => {
    expect(infos.length).toBe(36);
    for (const { file, text } of infos) expect(renderNarInfo(parseNarInfo(text)), file).toBe(text);
  });

  it("reads the same metadata that nix path-info reports", () => {
    const byPath = new Map(fixturePathInfo("store").map((p) => [p.path, p]));
    for (const { file, text } of infos) {
      const ni = parseNarInfo(text);
      const p = byPath.get(ni.storePath)!;
      expect(p, file).toBeDefined();
      expect(formatSri(ni.narHash)).toBe(p.narHash);
      expect(ni.narSize).toBe(p.narSize);
      expect(ni.references.map((r) => `/nix/store/${r}`)).toEqual(p.references);
      expect(ni.deriver ? `/nix/store/${ni.deriver}` : undefined).toBe(p.deriver);
      expect(ni.sigs).toEqual(p.signatures);
      expect(ni.ca).toBe(p.ca);
      expect(ni.fileHash).toBeDefined();
      if (ni.compression === "none") expect(sha256Equal(ni.fileHash!, ni.narHash)).toBe(true);
    }
  });

  it("covers the edge cases the fixtures were made for", () => {
    const parsed = infos.map((i) => parseNarInfo(i.text));
    expect(parsed.some((n) => n.references.length === 0)).toBe(true);
    expect(parsed.some((n) => n.references.length >= 4)).toBe(true);
    expect(parsed.some((n) => n.references.includes(n.storePath.slice("/nix/store/".length)))).toBe(true);
    expect(parsed.some((n) => n.ca !== undefined && n.deriver === undefined)).toBe(true);
    expect(parsed.every((n) => n.sigs.length === 2)).toBe(true);
  });
});

describe("parseNarInfo", () => {
  it("fills defaults as Nix does", () => {
    const ni = parseNarInfo(minimal());
    expect(ni.compression).toBe("bzip2");
    expect(ni.references).toEqual([]);
    expect(ni.sigs).toEqual([]);
    expect(ni.fileHash).toBeUndefined();
    expect(ni.fileSize).toBeUndefined();
    expect(ni.deriver).toBeUndefined();
    expect(ni.system).toBeUndefined();
    expect(ni.ca).toBeUndefined();
  });

  it("tolerates a missing final newline, unknown keys and unknown-deriver", () => {
    const text = minimal("Deriver: unknown-deriver\nFutureField: whatever it is\nSystem: x86_64-linux");
    const ni = parseNarInfo(text);
    expect(ni.deriver).toBeUndefined();
    expect(ni.system).toBe("x86_64-linux");
  });

  it("reads hashes in any base and renders them in nix32", () => {
    const d = parseHash(H1);
    const hex = `sha256:${d.digest.toString("hex")}`;
    const ni = parseNarInfo(minimal(`FileHash: ${formatSri(d)}\nFileSize: 10\n`).replace(H1, hex));
    expect(sha256Equal(ni.narHash, d)).toBe(true);
    expect(renderNarInfo(ni)).toContain(`NarHash: ${formatNix32(d)}\nNarSize: 168\n`);
    expect(renderNarInfo(ni)).toContain(`FileHash: ${H1}\nFileSize: 10\n`);
  });

  it("keeps references as the set Nix signs: sorted by base name, once each", () => {
    const ni = parseNarInfo(minimal(`References: ${REF_B}  ${REF_A} ${REF_B}\n`));
    expect(ni.references).toEqual([REF_A, REF_B]);
  });

  it("names the field that is wrong", () => {
    const cases: [string, string, RegExp][] = [
      ["StorePath", minimal().replace(/^StorePath.*\n/, ""), /no StorePath line/],
      ["URL", minimal().replace(/^URL.*\n/m, ""), /no URL line/],
      ["NarHash", minimal().replace(/^NarHash.*\n/m, ""), /no NarHash line/],
      ["NarSize", minimal().replace(/^NarSize.*\n/m, ""), /no NarSize line/],
      ["NarHash", minimal(`NarHash: ${H1}\n`), /more than one NarHash/],
      ["References", minimal(`References: \nReferences: \n`), /more than one References/],
      ["NarSize", minimal().replace("NarSize: 168", "NarSize: 16a"), /NarSize must be a non-negative decimal integer/],
      ["NarSize", minimal().replace("NarSize: 168", "NarSize: -1"), /NarSize/],
      ["NarSize", minimal().replace("NarSize: 168", "NarSize: 0"), /greater than 0/],
      ["NarSize", minimal().replace("NarSize: 168", "NarSize: 99999999999999999999"), /NarSize/],
      ["FileSize", minimal("FileSize: 1.5\n"), /FileSize/],
      ["NarHash", minimal().replace(H1, "sha256:xyz"), /narinfo NarHash: invalid hash/],
      ["FileHash", minimal("FileHash: md5:00000000000000000000000000000000\n"), /unsupported hash algorithm/],
      ["References", minimal("References: /nix/store/5w4y7fqdr975lpnr3vmfavn6qdrmhvyl-fx-link\n"), /References/],
      ["References", minimal("References: not-a-store-path\n"), /References/],
      ["Deriver", minimal("Deriver: bad\n"), /Deriver/],
      ["StorePath", minimal().replace("/nix/store/f5dh", "/nix/store/e5dh"), /StorePath/],
      ["StorePath", minimal().replace("/nix/store/", "nix/store/"), /not an absolute store path/],
      ["Compression", minimal("Compression: rar\n"), /unknown compression method "rar"/],
      ["URL", minimal().replace("URL: nar/x.nar", "URL: "), /URL is empty/],
      ["Sig", minimal("Sig: nocolon\n"), /Sig/],
      ["CA", minimal("CA: sha256:abc\n"), /CA/],
      ["(line 5)", minimal("Broken line\n"), /line 5 is not "Key: value"/],
      ["NarSize", minimal().replace("NarSize: 168", "NarSize:168"), /not "Key: value"/],
      ["(line 5)", minimal("\n"), /line 5/],
      ["(format)", minimal().replaceAll("\n", "\r\n"), /\\n line ends/],
    ];
    for (const [field, text, re] of cases) {
      expect(fieldOf(() => parseNarInfo(text)), text).toBe(field);
      expect(() => parseNarInfo(text), text).toThrow(re);
    }
  });
});

describe("renderNarInfo", () => {
  const base: NarInfo = {
    storePath: "/nix/store/f5dhjkjhvcb9zlp753r8akyfrpmiw32y-fx-self",
    url: "nar/x.nar.zst",
    compression: "zstd",
    narHash: parseHash(H1),
    narSize: 168,
    references: [],
    sigs: [],
  };

  it("writes Nix's field order, References even when empty, optional lines only when set", () => {
    expect(renderNarInfo(base)).toBe(
      `StorePath: ${base.storePath}\nURL: nar/x.nar.zst\nCompression: zstd\nNarHash: ${H1}\nNarSize: 168\nReferences: \n`,
    );
    const full: NarInfo = {
      ...base,
      fileHash: parseHash(H1),
      fileSize: 99,
      references: [REF_A, REF_B],
      deriver: "zsp6yr6wm18jw6jn02l8i5351cn90fi0-fx-link.drv",
      system: "x86_64-linux",
      sigs: ["k1:AAAA", "k2:BBBB"],
      ca: "fixed:r:sha256:1gji5n5wr0rilzyw6a4p4x7nqyvvy7jia2g4yyy6vc669s2ir8md",
    };
    const text = renderNarInfo(full);
    expect(text.split("\n").map((l) => l.split(":")[0])).toEqual([
      "StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize", "References", "Deriver", "System", "Sig", "Sig", "CA", "",
    ]);
    expect(parseNarInfo(text)).toEqual(full);
  });

  it("refuses values that would inject lines", () => {
    expect(() => renderNarInfo({ ...base, system: "x\nSig: evil:AAAA" })).toThrow(/System must not contain a line break/);
    expect(() => renderNarInfo({ ...base, url: "a\rb" })).toThrow(NarInfoError);
    expect(() => renderNarInfo({ ...base, references: [`${REF_A} ${REF_B}`] })).toThrow(NarInfoError);
  });
});
