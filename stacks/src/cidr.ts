// Just enough CIDR arithmetic to validate config and carve the VPC into subnets.
import { isIPv4, isIPv6 } from "node:net";

export interface Ipv4Cidr {
  readonly address: number;
  readonly prefix: number;
}

function ipv4ToNumber(address: string): number {
  return address.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function numberToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** Parses "a.b.c.d/p"; returns a reason string instead of throwing so callers can name the field. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | string {
  const match = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (match === null || !isIPv4(match[1] ?? "")) return `"${text}" is not an IPv4 CIDR like 10.0.0.0/16`;
  const prefix = Number(match[2]);
  if (prefix > 32) return `"${text}" has a prefix longer than /32`;
  const address = ipv4ToNumber(match[1] ?? "");
  const size = 2 ** (32 - prefix);
  if (address % size !== 0) {
    return `"${text}" has host bits set; did you mean ${numberToIpv4(address - (address % size))}/${prefix}?`;
  }
  return { address, prefix };
}

/** Accepts IPv4 or IPv6 CIDRs (admin addresses may be either). */
export function checkAnyCidr(text: string): string | undefined {
  if (text.includes(":")) {
    const match = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(text);
    if (match === null || !isIPv6(match[1] ?? "") || Number(match[2]) > 128) {
      return `"${text}" is not an IPv6 CIDR like 2001:db8::/48`;
    }
    return undefined;
  }
  const parsed = parseIpv4Cidr(text);
  return typeof parsed === "string" ? parsed : undefined;
}

export function isWholeInternet(text: string): boolean {
  return /\/0$/.test(text.trim());
}

/** The index-th block of `newBits` more prefix bits inside `cidr`, like Terraform's cidrsubnet(). */
export function subnetOf(cidr: Ipv4Cidr, newBits: number, index: number): string {
  const prefix = cidr.prefix + newBits;
  if (prefix > 32 || index >= 2 ** newBits) throw new RangeError(`no subnet ${index} of /${prefix} in /${cidr.prefix}`);
  return `${numberToIpv4(cidr.address + index * 2 ** (32 - prefix))}/${prefix}`;
}

export function formatIpv4Cidr(cidr: Ipv4Cidr): string {
  return `${numberToIpv4(cidr.address)}/${cidr.prefix}`;
}
