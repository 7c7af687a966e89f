import { describe, expect, it } from "vitest";
import { Dns } from "./dns.ts";
import type { DnsTarget } from "./dns.ts";
import type { Deployment } from "../config.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

const route53: Deployment["dns"] = { provider: "route53", domain: "cache.example.net", zone: "example.net" };
const cloudflare: Deployment["dns"] = { provider: "cloudflare", domain: "cache.example.net", zone: "0123456789abcdef0123456789abcdef" };
const address: DnsTarget = { kind: "address", ip: "192.0.2.10" };
const balancer: DnsTarget = { kind: "load-balancer", dnsName: "lb.elb.amazonaws.com", zoneId: "ZLB" };

function build(dns: Deployment["dns"], target: DnsTarget, validation = false) {
  return synthScope((scope) => {
    const names = new Dns(scope, "dns", { dns });
    names.pointAt(target);
    if (validation) names.validationRecord("validation", { name: "_x.cache.example.net.", type: "CNAME", value: "_y.acm-validations.aws." });
  });
}

describe("Dns", () => {
  it("creates nothing with provider none", () => {
    const tf = build({ provider: "none", domain: undefined, zone: undefined }, address);
    expect(tf.resource ?? {}).toEqual({});
    expect(() => build({ provider: "none", domain: undefined, zone: undefined }, address, true)).toThrow(/needs dns.provider route53 or cloudflare/);
  });

  it("route53: an A record on the Elastic IP in the named zone", () => {
    const tf = build(route53, address);
    expect(one(tf, "aws_route53_zone", "data")).toMatchObject({ name: "example.net", private_zone: false });
    expect(one(tf, "aws_route53_record")).toMatchObject({ name: "cache.example.net", type: "A", records: ["192.0.2.10"], ttl: 300 });
  });

  it("route53: an alias on the load balancer", () => {
    const record = one(build(route53, balancer), "aws_route53_record");
    expect(record).toMatchObject({ type: "A", alias: { name: "lb.elb.amazonaws.com", zone_id: "ZLB", evaluate_target_health: true } });
    expect(record["records"]).toBeUndefined();
  });

  it("cloudflare: a DNS-only A record on the Elastic IP", () => {
    expect(one(build(cloudflare, address), "cloudflare_dns_record")).toMatchObject({
      zone_id: "0123456789abcdef0123456789abcdef",
      name: "cache.example.net",
      type: "A",
      content: "192.0.2.10",
      proxied: false,
    });
  });

  it("cloudflare: a DNS-only CNAME on the load balancer", () => {
    expect(one(build(cloudflare, balancer), "cloudflare_dns_record")).toMatchObject({ type: "CNAME", content: "lb.elb.amazonaws.com", proxied: false });
  });

  it("publishes certificate validation records in either provider, never proxied", () => {
    expect(all(build(route53, balancer, true), "aws_route53_record")).toHaveLength(2);
    const records = all(build(cloudflare, balancer, true), "cloudflare_dns_record");
    expect(records).toHaveLength(2);
    expect(records.every((r) => r["proxied"] === false)).toBe(true);
  });
});
