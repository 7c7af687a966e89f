import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURES, fixtureNars } from "../../test/fixtures/nix/fixtures.ts";
import { NarParser } from "./nar.ts";
import { NarListing, nixJsonString } from "./nar-listing.ts";

function listingOf(bytes: Buffer, chunk: number, maxBytes?: number): Buffer | null {
  const listing = new NarListing(maxBytes);
  const p = new NarParser(listing);
  for (let pos = 0; pos < bytes.length; pos += chunk) p.push(bytes.subarray(pos, pos + chunk));
  p.end();
  return listing.result();
}

describe("NAR listings (.ls)", () => {
  // The oracle: the .ls files Nix 2.8 wrote with write-nar-listing=true (make-fixtures.sh).
  for (const { name, bytes } of fixtureNars()) {
    it(`matches Nix's .ls byte for byte: ${name}`, () => {
      const expected = readFileSync(path.join(FIXTURES, "nar-listings", `${name}.ls`));
      for (const chunk of [bytes.length, 7, 1]) expect(listingOf(bytes, chunk)?.equals(expected)).toBe(true);
    });
  }

  it("escapes as Nix's JSON writer: quotes, backslashes, control characters; other bytes raw", () => {
    expect(nixJsonString('a"b\\c\nd\re\tf\u0001g\u007f\u00e9')).toBe('"a\\"b\\\\c\\nd\\re\\tf\\u0001g\u007f\u00e9"');
  });

  it("is dropped, not grown, past its cap", () => {
    const tree = fixtureNars().find((n) => n.name.startsWith("fx-tree"))!;
    expect(listingOf(tree.bytes, 4096, 200)).toBeNull();
    expect(listingOf(tree.bytes, 4096, 100_000)).not.toBeNull();
  });
});
