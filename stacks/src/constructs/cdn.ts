// The public caches' bucket layouts (larderd's bucket-layout: `<prefix>/<cache>/nix-cache-info`,
// `<hash>.narinfo`, `nar/…`) served by CloudFront, so Nix substitutes from https://<domain>/<cache>
// with larderd down. The bucket stays private: CloudFront signs its requests with origin access
// control (SigV4) and the bucket policy lets the CloudFront service read `<prefix>/*` only for
// this one distribution (AWS:SourceArn). Narinfos change (GC removes them, a cache turns private),
// so they are cached briefly; NAR files are named by their content's hash and cached for a year.
import { Construct } from "constructs";
import type { TerraformProvider } from "cdktf";
import { CloudfrontCachePolicy } from "@cdktf/provider-aws/lib/cloudfront-cache-policy/index.js";
import { CloudfrontDistribution } from "@cdktf/provider-aws/lib/cloudfront-distribution/index.js";
import { CloudfrontOriginAccessControl } from "@cdktf/provider-aws/lib/cloudfront-origin-access-control/index.js";
import type { CdnPriceClass } from "../config.ts";
import type { CacheBucket } from "./cache-bucket.ts";
import { validatedCertificate } from "./certificate.ts";
import type { Dns } from "./dns.ts";

export interface CdnProps {
  readonly name: string;
  readonly domain: string;
  readonly prefix: string;
  readonly priceClass: CdnPriceClass;
  readonly cache: CacheBucket;
  readonly dns: Dns;
  /** An AWS provider for us-east-1: CloudFront takes certificates only from there. */
  readonly usEast1: TerraformProvider;
}

/** Seconds a narinfo (and nix-cache-info, logs, realisations) may be served from the edge: GC and visibility changes show within this. */
export const CDN_SHORT_TTL_SECONDS = 300;
/** NAR files (nar/<file hash>) never change under a name. */
export const CDN_IMMUTABLE_TTL_SECONDS = 365 * 24 * 3600;
/** The only methods a substituter sends; CloudFront forwards nothing else. */
const READ_METHODS = ["GET", "HEAD"];

export class Cdn extends Construct {
  readonly distribution: CloudfrontDistribution;
  readonly url: string;

  constructor(scope: Construct, id: string, props: CdnProps) {
    super(scope, id);
    const bucket = props.cache.bucket;
    const originId = "bucket-layouts";

    const access = new CloudfrontOriginAccessControl(this, "origin-access", {
      name: `${props.name}-layouts`,
      description: "larder: CloudFront reads the public bucket layouts, signed",
      originAccessControlOriginType: "s3",
      signingBehavior: "always",
      signingProtocol: "sigv4",
    });

    // Nothing from the request but its path: no cookies, query strings or headers in the key or
    // forwarded, and no compression (NARs are compressed already; Nix asks for none).
    const policy = (policyId: string, comment: string, ttl: { min: number; default: number; max: number }) =>
      new CloudfrontCachePolicy(this, policyId, {
        name: `${props.name}-${policyId}`,
        comment,
        minTtl: ttl.min,
        defaultTtl: ttl.default,
        maxTtl: ttl.max,
        parametersInCacheKeyAndForwardedToOrigin: {
          cookiesConfig: { cookieBehavior: "none" },
          headersConfig: { headerBehavior: "none" },
          queryStringsConfig: { queryStringBehavior: "none" },
          enableAcceptEncodingGzip: false,
          enableAcceptEncodingBrotli: false,
        },
      });
    const short = policy("short", "larder narinfo and metadata: briefly", { min: 0, default: CDN_SHORT_TTL_SECONDS, max: CDN_SHORT_TTL_SECONDS });
    const immutable = policy("immutable", "larder NAR files: content-addressed", {
      min: CDN_IMMUTABLE_TTL_SECONDS,
      default: CDN_IMMUTABLE_TTL_SECONDS,
      max: CDN_IMMUTABLE_TTL_SECONDS,
    });
    const behavior = (cachePolicyId: string) => ({
      targetOriginId: originId,
      viewerProtocolPolicy: "redirect-to-https",
      allowedMethods: READ_METHODS,
      cachedMethods: READ_METHODS,
      cachePolicyId,
      compress: false,
    });

    const certificateArn = validatedCertificate(this, {
      domain: props.domain,
      dns: props.dns,
      provider: props.usEast1,
      ids: { certificate: "certificate", validated: "certificate-validated", record: "cdn-certificate-validation" },
    });

    this.distribution = new CloudfrontDistribution(this, "distribution", {
      comment: `larder ${props.name}: public caches (${props.prefix}/ in the bucket)`,
      enabled: true,
      isIpv6Enabled: true,
      httpVersion: "http2and3",
      priceClass: props.priceClass,
      aliases: [props.domain],
      origin: [
        {
          originId,
          domainName: bucket.bucketRegionalDomainName,
          // https://<domain>/<cache>/… reads <prefix>/<cache>/… in the bucket.
          originPath: `/${props.prefix}`,
          originAccessControlId: access.id,
        },
      ],
      defaultCacheBehavior: behavior(short.id),
      orderedCacheBehavior: [
        // NAR files are named by their content's hash. (A listing, <hash>.ls, is named by the store
        // path, whose NAR a re-push of a non-reproducible build may change: it stays short.)
        { pathPattern: "*/nar/*", ...behavior(immutable.id) },
      ],
      restrictions: { geoRestriction: { restrictionType: "none" } },
      viewerCertificate: {
        acmCertificateArn: certificateArn,
        sslSupportMethod: "sni-only",
        minimumProtocolVersion: "TLSv1.2_2021",
      },
    });

    // Read access to the layouts only, only for this distribution; the public access block stays on
    // (a grant to a service principal with a SourceArn condition is not public).
    props.cache.store.grant({
      sid: "CloudFrontReadsPublicLayouts",
      effect: "Allow",
      principals: [{ type: "Service", identifiers: ["cloudfront.amazonaws.com"] }],
      actions: ["s3:GetObject"],
      resources: [`${bucket.arn}/${props.prefix}/*`],
      condition: [{ test: "StringEquals", variable: "AWS:SourceArn", values: [this.distribution.arn] }],
    });

    props.dns.publish("cdn-record", props.domain, { kind: "cdn", dnsName: this.distribution.domainName, zoneId: this.distribution.hostedZoneId });
    this.url = `https://${props.domain}/`;
  }
}
