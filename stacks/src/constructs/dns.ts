// The cache's name: a Route53 record, a Cloudflare record, or nothing (the operator points the name,
// or clients use the bare address). Cloudflare records are never proxied: Cloudflare's proxy cuts
// any request that runs past ~100 s with HTTP 524, which is every large push (chutney #18).
import { Construct } from "constructs";
import { Fn } from "cdktf";
import type { TerraformResource } from "cdktf";
import { DataAwsRoute53Zone } from "@cdktf/provider-aws/lib/data-aws-route53-zone/index.js";
import { Route53Record } from "@cdktf/provider-aws/lib/route53-record/index.js";
import { DnsRecord } from "@cdktf/provider-cloudflare/lib/dns-record/index.js";
import type { Deployment } from "../config.ts";

/** What a name points at: the host's Elastic IP, the load balancer, or a CloudFront distribution. */
export type DnsTarget =
  | { readonly kind: "address"; readonly ip: string }
  | { readonly kind: "load-balancer"; readonly dnsName: string; readonly zoneId: string }
  | { readonly kind: "cdn"; readonly dnsName: string; readonly zoneId: string };

export interface DnsProps {
  readonly dns: Deployment["dns"];
}

const TTL_SECONDS = 300;

export class Dns extends Construct {
  private readonly settings: Deployment["dns"];
  private route53ZoneId: string | undefined;

  constructor(scope: Construct, id: string, props: DnsProps) {
    super(scope, id);
    this.settings = props.dns;
    if (props.dns.provider !== "none" && props.dns.domain === undefined) {
      throw new Error(`Dns ${id}: dns.domain is required with ${props.dns.provider}`);
    }
  }

  /** Publishes the cache's name (nothing with provider none). */
  pointAt(target: DnsTarget): void {
    const { provider, domain } = this.settings;
    if (provider === "none" || domain === undefined) return;
    this.publish("record", domain, target);
  }

  /**
   * Publishes another name of the deployment (the CDN's), in the same zone. Route53: alias records
   * (A, and AAAA for a CDN, which serves IPv6); Cloudflare: a DNS-only CNAME.
   */
  publish(id: string, name: string, target: DnsTarget): void {
    if (this.settings.provider === "none") throw new Error(`Dns ${id}: ${name} needs dns.provider route53 or cloudflare`);
    if (this.settings.provider === "route53") {
      if (target.kind === "address") {
        new Route53Record(this, id, { zoneId: this.zoneId(), name, type: "A", ttl: TTL_SECONDS, records: [target.ip] });
        return;
      }
      // CloudFront's alias target must not evaluate health (it has none to report).
      const alias = { name: target.dnsName, zoneId: target.zoneId, evaluateTargetHealth: target.kind === "load-balancer" };
      new Route53Record(this, id, { zoneId: this.zoneId(), name, type: "A", alias });
      if (target.kind === "cdn") new Route53Record(this, `${id}-ipv6`, { zoneId: this.zoneId(), name, type: "AAAA", alias });
      return;
    }
    new DnsRecord(this, id, {
      zoneId: this.cloudflareZone(),
      name,
      type: target.kind === "address" ? "A" : "CNAME",
      content: target.kind === "address" ? target.ip : target.dnsName,
      ttl: TTL_SECONDS,
      proxied: false,
      comment:
        target.kind === "cdn"
          ? "larder CDN; keep DNS-only: CloudFront serves it (a proxy in front would cache and rewrite it twice)"
          : "larder; keep DNS-only: proxying breaks pushes longer than 100 s (HTTP 524)",
    });
  }

  /** Publishes a record for ACM's DNS validation in whichever DNS the deployment uses. */
  validationRecord(id: string, record: { readonly name: string; readonly type: string; readonly value: string }): TerraformResource {
    if (this.settings.provider === "route53") {
      return new Route53Record(this, id, {
        zoneId: this.zoneId(),
        name: record.name,
        type: record.type,
        ttl: 60,
        records: [record.value],
        allowOverwrite: true,
      });
    }
    if (this.settings.provider === "cloudflare") {
      return new DnsRecord(this, id, {
        zoneId: this.cloudflareZone(),
        name: Fn.trimsuffix(record.name, "."),
        type: record.type,
        content: Fn.trimsuffix(record.value, "."),
        ttl: 60,
        proxied: false,
      });
    }
    throw new Error("a validation record needs dns.provider route53 or cloudflare");
  }

  private zoneId(): string {
    if (this.route53ZoneId === undefined) {
      const zone = new DataAwsRoute53Zone(this, "zone", { name: this.settings.zone ?? "", privateZone: false });
      this.route53ZoneId = zone.zoneId;
    }
    return this.route53ZoneId;
  }

  private cloudflareZone(): string {
    return this.settings.zone ?? "";
  }
}
