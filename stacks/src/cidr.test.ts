import { describe, expect, it } from "vitest";
import { checkAnyCidr, formatIpv4Cidr, isWholeInternet, parseIpv4Cidr, subnetOf } from "./cidr.ts";

describe("cidr", () => {
  it("parses an IPv4 CIDR and carves subnets like cidrsubnet()", () => {
    const cidr = parseIpv4Cidr("10.40.0.0/16");
    if (typeof cidr === "string") throw new Error(cidr);
    expect(formatIpv4Cidr(cidr)).toBe("10.40.0.0/16");
    expect([0, 1, 2, 3].map((i) => subnetOf(cidr, 2, i))).toEqual(["10.40.0.0/18", "10.40.64.0/18", "10.40.128.0/18", "10.40.192.0/18"]);
    expect(() => subnetOf(cidr, 2, 4)).toThrow(RangeError);
  });

  it("explains what is wrong with a bad CIDR", () => {
    expect(parseIpv4Cidr("10.0.0.0")).toMatch(/not an IPv4 CIDR/);
    expect(parseIpv4Cidr("300.0.0.0/8")).toMatch(/not an IPv4 CIDR/);
    expect(parseIpv4Cidr("192.168.1.1/24")).toMatch(/did you mean 192\.168\.1\.0\/24/);
  });

  it("accepts IPv6 admin ranges and recognises the whole internet", () => {
    expect(checkAnyCidr("2001:db8::/48")).toBeUndefined();
    expect(checkAnyCidr("2001:db8::/129")).toMatch(/IPv6/);
    expect(isWholeInternet("0.0.0.0/0")).toBe(true);
    expect(isWholeInternet("::/0")).toBe(true);
    expect(isWholeInternet("10.0.0.0/8")).toBe(false);
  });
});
