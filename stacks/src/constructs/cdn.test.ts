import { describe, expect, it } from "vitest";
import { Testing } from "cdktf";
import { LarderStack } from "../larder-stack.ts";
import { parseDeployment } from "../config.ts";
import type { TerraformJson } from "../policy.ts";
import { checkPolicy } from "../policy.ts";
import { all, one, validInput } from "../../test/helpers.ts";
import { CDN_IMMUTABLE_TTL_SECONDS, CDN_SHORT_TTL_SECONDS } from "./cdn.ts";

type Block = Record<string, unknown>;

function synth(change: (input: ReturnType<typeof validInput>) => void): TerraformJson {
  const input = validInput();
  change(input);
  const stack = new LarderStack(Testing.app(), "larder-test", parseDeployment(input));
  return JSON.parse(Testing.synth(stack)) as TerraformJson;
}

const withCdn = (input: ReturnType<typeof validInput>) => {
  input.cdn = { domain: "nix.example.net" };
};

describe("Cdn: public caches' bucket layouts through CloudFront", () => {
  const tf = synth(withCdn);
  const distribution = one(tf, "aws_cloudfront_distribution");
  const [address] = Object.keys(tf.resource?.["aws_cloudfront_distribution"] ?? {});

  it("reads <prefix>/ of the deployment's bucket with origin access control (SigV4), no origin access identity", () => {
    const [origin] = distribution["origin"] as Block[];
    expect(origin).toMatchObject({ origin_path: "/public" });
    expect(String(origin?.["domain_name"])).toMatch(/^\$\{aws_s3_bucket\.cache_store_bucket_[A-Z0-9]+\.bucket_regional_domain_name\}$/);
    expect(String(origin?.["origin_access_control_id"])).toMatch(/^\$\{aws_cloudfront_origin_access_control\./);
    expect(origin?.["s3_origin_config"]).toBeUndefined();
    expect(one(tf, "aws_cloudfront_origin_access_control")).toMatchObject({ origin_access_control_origin_type: "s3", signing_behavior: "always", signing_protocol: "sigv4" });
    expect(all(tf, "aws_cloudfront_origin_access_identity")).toHaveLength(0);
  });

  it("the bucket stays private: one policy, the TLS denial plus GetObject on <prefix>/* for this distribution only", () => {
    expect(one(tf, "aws_s3_bucket_public_access_block")).toMatchObject({ block_public_policy: true, restrict_public_buckets: true });
    const documents = all(tf, "aws_iam_policy_document", "data").filter((d) => JSON.stringify(d).includes("DenyInsecureTransport"));
    expect(documents).toHaveLength(1);
    const statements = documents[0]?.["statement"] as Block[];
    expect(statements.map((s) => s["sid"])).toEqual(["DenyInsecureTransport", "CloudFrontReadsPublicLayouts"]);
    expect(statements[1]).toMatchObject({
      effect: "Allow",
      principals: [{ type: "Service", identifiers: ["cloudfront.amazonaws.com"] }],
      actions: ["s3:GetObject"],
      condition: [{ test: "StringEquals", variable: "AWS:SourceArn", values: [`\${aws_cloudfront_distribution.${address}.arn}`] }],
    });
    expect(String((statements[1]?.["resources"] as string[])[0])).toMatch(/^\$\{aws_s3_bucket\.[^}]+\.arn\}\/public\/\*$/);
  });

  it("TLS 1.2 or newer with an ACM certificate from us-east-1, validated in the deployment's DNS; HTTP redirects", () => {
    expect(distribution["aliases"]).toEqual(["nix.example.net"]);
    expect(distribution["viewer_certificate"]).toMatchObject({ ssl_support_method: "sni-only", minimum_protocol_version: "TLSv1.2_2021" });
    expect(String((distribution["viewer_certificate"] as Block)["acm_certificate_arn"])).toMatch(/aws_acm_certificate_validation\.cdn_certificate-validated_[A-Z0-9]+\.certificate_arn/);
    const certificates = all(tf, "aws_acm_certificate").filter((c) => c["domain_name"] === "nix.example.net");
    expect(certificates).toHaveLength(1);
    expect(certificates[0]).toMatchObject({ validation_method: "DNS", provider: "aws.us-east-1" });
    expect(Object.values((tf as { provider?: { aws?: Block[] } }).provider?.aws ?? [])).toEqual(
      expect.arrayContaining([expect.objectContaining({ alias: "us-east-1", region: "us-east-1", allowed_account_ids: ["111122223333"] })]),
    );
    const validations = all(tf, "aws_acm_certificate_validation").filter((v) => v["provider"] === "aws.us-east-1");
    expect(validations).toHaveLength(1);
    const behaviors = [distribution["default_cache_behavior"], ...(distribution["ordered_cache_behavior"] as Block[])] as Block[];
    for (const b of behaviors) expect(b).toMatchObject({ viewer_protocol_policy: "redirect-to-https", allowed_methods: ["GET", "HEAD"], compress: false });
  });

  it("narinfo and metadata briefly, nar/ for a year; no cookies, query strings or headers", () => {
    const policies = new Map(Object.entries(tf.resource?.["aws_cloudfront_cache_policy"] ?? {}).map(([name, body]) => [`\${aws_cloudfront_cache_policy.${name}.id}`, body as Block]));
    const ttlOf = (b: Block) => policies.get(String(b["cache_policy_id"]));
    const ordered = distribution["ordered_cache_behavior"] as Block[];
    expect(ordered.map((b) => b["path_pattern"])).toEqual(["*/nar/*"]);
    expect(ttlOf(ordered[0] as Block)).toMatchObject({ min_ttl: CDN_IMMUTABLE_TTL_SECONDS, default_ttl: CDN_IMMUTABLE_TTL_SECONDS, max_ttl: CDN_IMMUTABLE_TTL_SECONDS });
    // Everything else (<hash>.narinfo, nix-cache-info, .ls, log/, realisations/) is the default behavior.
    expect(ttlOf(distribution["default_cache_behavior"] as Block)).toMatchObject({ default_ttl: CDN_SHORT_TTL_SECONDS, max_ttl: CDN_SHORT_TTL_SECONDS });
    expect(CDN_SHORT_TTL_SECONDS).toBeLessThanOrEqual(300);
    for (const p of policies.values()) {
      expect(p["parameters_in_cache_key_and_forwarded_to_origin"]).toMatchObject({
        cookies_config: { cookie_behavior: "none" },
        headers_config: { header_behavior: "none" },
        query_strings_config: { query_string_behavior: "none" },
      });
    }
  });

  it("publishes the name as Route53 aliases (A and AAAA) to the distribution, and tells larderd the public URL and prefix", () => {
    const records = all(tf, "aws_route53_record").filter((r) => r["name"] === "nix.example.net");
    expect(records.map((r) => r["type"]).sort()).toEqual(["A", "AAAA"]);
    for (const r of records) {
      expect(r["alias"]).toMatchObject({ name: `\${aws_cloudfront_distribution.${address}.domain_name}`, zone_id: `\${aws_cloudfront_distribution.${address}.hosted_zone_id}`, evaluate_target_health: false });
    }
    expect(String(one(tf, "aws_instance")["user_data"])).toContain('bucketLayout = { prefix = "public"; publicUrl = "https://nix.example.net/"; };');
    expect((tf.output as Record<string, Block>)["cdn_url"]).toMatchObject({ value: "https://nix.example.net/" });
    expect(checkPolicy(tf)).toEqual([]);
  });

  it("Cloudflare: a DNS-only CNAME to the distribution and the validation record there; a custom prefix is the origin path", () => {
    const cf = synth((input) => {
      input.dns = { provider: "cloudflare", domain: "cache.example.net", zone: "0123456789abcdef0123456789abcdef" };
      input.cdn = { domain: "nix.example.net", prefix: "layouts/v1", priceClass: "PriceClass_All" };
    });
    const record = all(cf, "cloudflare_dns_record").find((r) => r["name"] === "nix.example.net");
    expect(record).toMatchObject({ type: "CNAME", proxied: false });
    expect(String(record?.["content"])).toMatch(/aws_cloudfront_distribution\.[^}]+\.domain_name/);
    const d = one(cf, "aws_cloudfront_distribution");
    expect((d["origin"] as Block[])[0]).toMatchObject({ origin_path: "/layouts/v1" });
    expect(d["price_class"]).toBe("PriceClass_All");
    expect(JSON.stringify(cf)).toContain("/layouts/v1/*");
    expect(checkPolicy(cf)).toEqual([]);
  });

  it("without cdn nothing changes: no distribution, no us-east-1 provider, no bucket layout in the user data", () => {
    const plain = synth(() => {});
    expect(all(plain, "aws_cloudfront_distribution")).toHaveLength(0);
    expect(JSON.stringify((plain as { provider?: unknown }).provider)).not.toContain("us-east-1");
    expect(String(one(plain, "aws_instance")["user_data"])).not.toContain("bucketLayout");
  });
});
