import { describe, expect, it } from "vitest";
import { fixtureNars } from "../../test/fixtures/nix/fixtures.ts";
import { NixFormatError } from "./errors.ts";
import { NAR_MAX_DEPTH, NAR_MAX_TOKEN, NarParser, type NarStats } from "./nar.ts";

// --- a tiny NAR writer for hand-made archives (checked against Nix's output below) ---
type Tok = string | Buffer;
function str(t: Tok): Buffer {
  const b = typeof t === "string" ? Buffer.from(t, "latin1") : t;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}
const nar = (...toks: Tok[]) => Buffer.concat([str("nix-archive-1"), ...toks.map(str)]);
const regular = (contents: Tok, exec = false): Tok[] => [
  "(", "type", "regular", ...(exec ? ["executable", ""] : []), "contents", contents, ")",
];
const symlink = (target: Tok): Tok[] => ["(", "type", "symlink", "target", target, ")"];
const dir = (...entries: [Tok, Tok[]][]): Tok[] => [
  "(", "type", "directory", ...entries.flatMap(([name, node]) => ["entry", "(", "name", name, "node", ...node, ")"]), ")",
];

// Deterministic chunking so a failure can be replayed.
function chunker(seed: number): (max: number) => number {
  let s = seed >>> 0;
  return (max) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return 1 + (s % max);
  };
}

function parse(bytes: Uint8Array, chunkMax = bytes.length, seed = 1): NarStats {
  const p = new NarParser();
  const next = chunker(seed);
  for (let pos = 0; pos < bytes.length; ) {
    const n = Math.min(bytes.length - pos, chunkMax === bytes.length ? chunkMax : next(chunkMax));
    p.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return p.end();
}

// What Nix itself listed for the path (`nix store ls -R --json`), summed up independently.
type Listing = { type: string; size?: number; entries?: Record<string, Listing> };
function expected(l: Listing): NarStats {
  const kids = Object.values(l.entries ?? {}).map(expected);
  return {
    entries: 1 + kids.reduce((a, k) => a + k.entries, 0),
    regularBytes: (l.size ?? 0) + kids.reduce((a, k) => a + k.regularBytes, 0),
  };
}

function parseError(bytes: Uint8Array): string {
  try {
    parse(bytes);
  } catch (e) {
    if (e instanceof NixFormatError) return e.message;
    throw e;
  }
  throw new Error("expected the NAR to be rejected");
}

const nars = fixtureNars();

describe("NarParser on NARs dumped by Nix", () => {
  it("has the fixture kinds it is meant to cover", () => {
    expect(nars.map((n) => n.name)).toEqual(
      expect.arrayContaining(["fx-dep", "fx-empty-file", "fx-empty-dir", "fx-link", "fx-mid", "fx-tree_1.0+x=y?"]),
    );
  });

  it("accepts each one in one piece and agrees with Nix's listing", () => {
    for (const { name, bytes, listing } of nars) {
      const want = expected(listing as Listing);
      expect(parse(bytes), name).toEqual(want);
    }
    const tree = nars.find((n) => n.name.startsWith("fx-tree"))!;
    expect(parse(tree.bytes).entries).toBeGreaterThan(15);
  });

  it("gives the same answer for any chunking, down to single bytes", () => {
    for (const { name, bytes, listing } of nars) {
      const want = expected(listing as Listing);
      expect(parse(bytes, 1), name).toEqual(want);
      for (let seed = 1; seed <= 40; seed++) {
        for (const max of [3, 17, 64, 999]) expect(parse(bytes, max, seed), `${name} ${seed} ${max}`).toEqual(want);
      }
    }
  });

  it("rejects every truncation", () => {
    for (const { name, bytes } of nars) {
      for (let len = 0; len < bytes.length; len++) {
        expect(() => parse(bytes.subarray(0, len)), `${name} cut at ${len}`).toThrow(NixFormatError);
      }
    }
    expect(parseError(nars[0]!.bytes.subarray(0, 30))).toMatch(/^invalid NAR at byte 30: NAR is truncated/);
    // The reported position does not depend on how the input was cut into chunks.
    const mid = nars.find((n) => n.name === "fx-mid")!.bytes;
    for (let len = 0; len < mid.length; len += 7) {
      const whole = parseError(mid.subarray(0, len));
      expect(() => parse(mid.subarray(0, len), 1)).toThrow(whole);
      expect(() => parse(mid.subarray(0, len), 5, len)).toThrow(whole);
    }
  });

  it("rejects trailing data", () => {
    const bytes = Buffer.concat([nars[0]!.bytes, Buffer.alloc(8)]);
    expect(parseError(bytes)).toMatch(/8 bytes of trailing data/);
  });

  it("rejects any flipped byte in the framing of a small NAR", () => {
    // Flipping a byte inside file contents is invisible to a validator; anywhere else it must be caught.
    const dep = nars.find((n) => n.name === "fx-dep")!.bytes;
    const contentsAt = dep.indexOf("dependency");
    let rejected = 0;
    for (let i = 0; i < dep.length; i++) {
      if (i >= contentsAt && i < contentsAt + "dependency\n".length) continue;
      const bad = Buffer.from(dep);
      bad[i] = bad[i]! ^ 0x01;
      expect(() => parse(bad), `byte ${i}`).toThrow(NixFormatError);
      rejected++;
    }
    expect(rejected).toBe(dep.length - 11);
  });
});

describe("NarParser on hand-made NARs", () => {
  it("writes the same bytes as Nix for the same tree (so the cases below are realistic)", () => {
    expect(nar(...regular("dependency\n")).equals(nars.find((n) => n.name === "fx-dep")!.bytes)).toBe(true);
    expect(nar(...regular("")).equals(nars.find((n) => n.name === "fx-empty-file")!.bytes)).toBe(true);
    expect(nar(...dir()).equals(nars.find((n) => n.name === "fx-empty-dir")!.bytes)).toBe(true);
  });

  it("accepts a mixed tree", () => {
    const t = nar(...dir(["a", regular("x", true)], ["b", symlink("a")], ["c", dir(["d", dir()])]));
    expect(parse(t)).toEqual({ entries: 5, regularBytes: 1 });
  });

  it("says what is wrong", () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.concat([str("nix-archive-2"), ...regular("x").map(str)]), /not a NAR: expected magic "nix-archive-1", found "nix-archive-2"/],
      [Buffer.from("not a nar at all, not even close"), /exceeds the limit/],
      [nar(...dir(["b", regular("")], ["a", regular("")])), /not in sorted order: "a" after "b"/],
      [nar(...dir(["a", regular("")], ["a", regular("")])), /not in sorted order: "a" after "a"/],
      [nar(...dir(["B", regular("")], ["a", regular("")], ["\xe9", regular("")], ["\xc3\xa9", regular("")])), /not in sorted order/],
      [nar(...dir(["a/b", regular("")])), /invalid file name "a\/b"/],
      [nar(...dir([".", regular("")])), /invalid file name "\."/],
      [nar(...dir(["..", regular("")])), /invalid file name "\.\."/],
      [nar(...dir(["", regular("")])), /invalid file name ""/],
      [nar(...dir(["a\0", regular("")])), /invalid file name/],
      [nar("(", "type", "fifo", ")"), /unknown node type "fifo"/],
      [nar("(", "type", "regular", "executable", "yes", "contents", "", ")"), /expected "", found "yes"/],
      [nar("(", "type", "regular", "contents", "", "executable", "", ")"), /expected "\)", found "executable"/],
      [nar("(", "type", "regular", ")"), /expected "contents", found "\)"/],
      [nar(...symlink("")), /invalid symlink target ""/],
      [nar("(", "kind", "regular"), /expected "type", found "kind"/],
      [nar(...dir(["a", regular("")]).slice(0, -1), "extra"), /expected "entry" or "\)", found "extra"/],
      [nar(...dir(["a".repeat(NAR_MAX_TOKEN + 1), regular("")])), /length of entry name 4097 exceeds the limit of 4096/],
    ];
    for (const [bytes, re] of cases) {
      const msg = parseError(bytes);
      expect(msg, re.source).toMatch(re);
      expect(msg).toMatch(/^invalid NAR at byte \d+: /);
    }
    // The sorted order is byte order: "B" < "a" < "\xc3\xa9" < "\xe9".
    expect(parse(nar(...dir(["B", regular("")], ["a", regular("")], ["\xc3\xa9", regular("")], ["\xe9", regular("")]))).entries).toBe(5);
    expect(parse(nar(...dir(["a".repeat(NAR_MAX_TOKEN), regular("")]))).entries).toBe(2);
  });

  it("rejects non-zero padding after tokens and after file contents", () => {
    const good = nar(...regular("abc"));
    const magicPad = Buffer.from(good);
    magicPad[8 + 13] = 1;
    expect(parseError(magicPad)).toMatch(/non-zero padding after NAR magic/);
    const contentsPad = Buffer.from(good);
    contentsPad[good.indexOf("abc") + 3] = 0x20;
    expect(parseError(contentsPad)).toMatch(/non-zero padding after file contents/);
  });

  it("rejects absurd lengths before reading on", () => {
    const huge = Buffer.concat([str("nix-archive-1"), ...["(", "type", "regular", "contents"].map(str), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x80])]);
    expect(parseError(huge)).toMatch(/file size .* exceeds the limit/);
  });

  it("limits directory depth to what a file system path can hold", () => {
    const nest = (depth: number): Tok[] => {
      const open = ["(", "type", "directory", "entry", "(", "name", "d", "node"];
      return [...Array<Tok[]>(depth - 1).fill(open).flat(), ...dir(), ...Array<Tok>(2 * (depth - 1)).fill(")")];
    };
    expect(parse(nar(...nest(NAR_MAX_DEPTH))).entries).toBe(NAR_MAX_DEPTH);
    expect(parseError(nar(...nest(NAR_MAX_DEPTH + 1)))).toMatch(/nested deeper than 2048 levels/);
  });

  it("streams file contents without keeping them", () => {
    const size = 64 * 1024 * 1024 + 3;
    const head = Buffer.concat([str("nix-archive-1"), ...["(", "type", "regular", "contents"].map(str)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(size));
    const p = new NarParser();
    p.push(head);
    p.push(len);
    const chunk = new Uint8Array(1024 * 1024);
    for (let left = size; left > 0; left -= chunk.length) p.push(chunk.subarray(0, Math.min(left, chunk.length)));
    p.push(Buffer.concat([Buffer.alloc(5), str(")")]));
    expect(p.end()).toEqual({ entries: 1, regularBytes: size });
  });

  it("keeps the first error and refuses use after end()", () => {
    const p = new NarParser();
    expect(() => p.push(Buffer.from("garbage!garbage!"))).toThrow(NixFormatError);
    expect(() => p.push(new Uint8Array(8))).toThrow(/exceeds the limit/);
    expect(() => p.end()).toThrow(/exceeds the limit/);
    const q = new NarParser();
    q.push(nars[0]!.bytes);
    q.end();
    expect(() => q.push(new Uint8Array(1))).toThrow(/after end/);
  });
});
