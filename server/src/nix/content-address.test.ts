import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeNixBase32 } from "./base32.ts";
import { checkContentAddress } from "./content-address.ts";

describe("content addresses as Nix 2.8 parses them", () => {
  const digest = (algo: string) => createHash(algo).update("x").digest();
  it("accepts text:sha256 and fixed[:r]:<algo> in base16, base32 and base64", () => {
    for (const algo of ["md5", "sha1", "sha256", "sha512"]) {
      const d = digest(algo);
      for (const enc of [d.toString("hex"), encodeNixBase32(d), d.toString("base64")]) {
        expect(() => checkContentAddress(`fixed:${algo}:${enc}`)).not.toThrow();
        expect(() => checkContentAddress(`fixed:r:${algo}:${enc}`)).not.toThrow();
      }
    }
    expect(() => checkContentAddress(`text:sha256:${encodeNixBase32(digest("sha256"))}`)).not.toThrow();
  });

  it.each([
    ["", /is not "text/],
    ["text:", /no "<algo>:"/],
    ["text:sha1:" + digest("sha1").toString("hex"), /text content addresses use sha256/],
    ["fixed:sha384:" + digest("sha384").toString("hex"), /unknown hash algorithm "sha384"/],
    ["fixed:sha256:" + digest("sha256").toString("hex").toUpperCase(), /not a sha256 digest/],
    ["fixed:sha256:" + digest("sha256").toString("hex") + "\n", /not a sha256 digest/],
    ["fixed:sha256-" + digest("sha256").toString("base64"), /no "<algo>:"/],
    ["fixed:r:r:sha256:" + digest("sha256").toString("hex"), /unknown hash algorithm "r"/],
    ["recursive:sha256:" + digest("sha256").toString("hex"), /is not "text/],
  ])("refuses %j", (ca, message) => {
    expect(() => checkContentAddress(ca)).toThrow(message);
  });
});
