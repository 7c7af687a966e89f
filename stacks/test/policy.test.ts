// The policy suite: each rule over the whole synthesized output of every committed deployment,
// and each rule against a fixture that breaks it (a rule that cannot fire proves nothing).
import { beforeAll, describe, expect, it } from "vitest";
import { POLICY_RULES, checkPolicy } from "../src/policy.ts";
import type { PolicyRule, TerraformJson } from "../src/policy.ts";
import { synthesizeCommitted } from "./committed-output.ts";
import type { SynthesizedStack } from "./committed-output.ts";

let stacks: SynthesizedStack[] = [];
beforeAll(async () => {
  stacks = await synthesizeCommitted();
});

function rule(id: string): PolicyRule {
  const found = POLICY_RULES.find((r) => r.id === id);
  if (found === undefined) throw new Error(`no rule ${id}`);
  return found;
}

describe("every committed deployment keeps every rule", () => {
  it("synthesizes a deployment stack and a state bootstrap stack per committed config", () => {
    const names = stacks.map((s) => s.name);
    expect(names).toContain("larder-example");
    expect(names).toContain("larder-example-scale");
    expect(names.filter((n) => n.startsWith("larder-state-"))).toHaveLength(2);
  });

  it.each(POLICY_RULES.map((r) => [r.id, r] as const))("%s", (_id, policyRule) => {
    let checked = 0;
    for (const stack of stacks) {
      const result = policyRule.check(stack.tf);
      expect(result.violations, stack.name).toEqual([]);
      checked += result.checked;
    }
    // The committed configs must exercise the rule, or it proves nothing about them.
    expect(checked).toBeGreaterThan(0);
  });
});

const bucket = (extra: Record<string, Record<string, unknown>> = {}): TerraformJson => ({
  resource: { aws_s3_bucket: { b: { bucket_prefix: "x-" } }, ...extra } as TerraformJson["resource"],
});
const bucketRef = "${aws_s3_bucket.b.id}";

const violating: Record<string, { fixture: TerraformJson; expected: RegExp[] }> = {
  "imdsv2-required": {
    fixture: { resource: { aws_instance: { i: { metadata_options: { http_tokens: "optional" } } }, aws_launch_template: { lt: {} } } },
    expected: [/^i: /, /^lt: /],
  },
  "no-world-ssh-or-postgres": {
    fixture: {
      resource: {
        aws_vpc_security_group_ingress_rule: {
          ssh: { ip_protocol: "tcp", from_port: 22, to_port: 22, cidr_ipv4: "0.0.0.0/0" },
          https: { ip_protocol: "tcp", from_port: 443, to_port: 443, cidr_ipv4: "0.0.0.0/0" },
        },
        aws_security_group: { sg: { ingress: [{ protocol: "tcp", from_port: 5000, to_port: 6000, ipv6_cidr_blocks: ["::/0"] }] } },
        aws_security_group_rule: { everything: { type: "ingress", protocol: "-1", from_port: 0, to_port: 0, cidr_blocks: ["0.0.0.0/0"] } },
      },
    },
    expected: [/^ssh: port 22/, /^sg\.ingress\[0\]: port 5432 open to ::\/0/, /^everything: port 22/, /^everything: port 5432/],
  },
  "bucket-private": {
    fixture: bucket({
      aws_s3_bucket_public_access_block: {
        p: { bucket: bucketRef, block_public_acls: true, block_public_policy: false, ignore_public_acls: true, restrict_public_buckets: true },
      },
    }),
    expected: [/^b: needs a public access block/],
  },
  "bucket-encrypted": { fixture: bucket(), expected: [/^b: needs default encryption/] },
  "bucket-tls-only": {
    fixture: bucket({
      aws_s3_bucket_policy: {
        p: { bucket: bucketRef, policy: JSON.stringify({ Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "${aws_s3_bucket.b.arn}/*" }] }) },
      },
    }),
    expected: [/^b: needs a bucket policy that denies/],
  },
  "bucket-grants-scoped": {
    fixture: {
      data: {
        aws_iam_policy_document: {
          loose: {
            statement: [{
              effect: "Allow",
              principals: [{ type: "Service", identifiers: ["cloudfront.amazonaws.com"] }],
              actions: ["s3:GetObject", "s3:ListBucket"],
              resources: ["${aws_s3_bucket.b.arn}/*"],
            }],
          },
        },
      },
      ...bucket({
      aws_s3_bucket_policy: {
        public: { bucket: bucketRef, policy: JSON.stringify({ Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "${aws_s3_bucket.b.arn}/*" }] }) },
        loose: { bucket: bucketRef, policy: "${data.aws_iam_policy_document.loose.json}" },
      },
    }),
    },
    expected: [/^public: grants access to everyone/, /^loose: CloudFront's grant needs StringEquals AWS:SourceArn/, /^loose: CloudFront may only s3:GetObject/, /^loose: CloudFront's grant must be limited to the layouts' prefix/],
  },
  "cdn-origin-access-control": {
    fixture: {
      resource: {
        aws_cloudfront_origin_access_identity: { legacy: {} },
        aws_cloudfront_origin_access_control: { unsigned: { origin_access_control_origin_type: "s3", signing_behavior: "never", signing_protocol: "sigv4" } },
        aws_cloudfront_distribution: {
          oai: { origin: [{ origin_id: "o", domain_name: "${aws_s3_bucket.b.bucket_regional_domain_name}", s3_origin_config: { origin_access_identity: "${aws_cloudfront_origin_access_identity.legacy.cloudfront_access_identity_path}" } }] },
          never: { origin: [{ origin_id: "o", domain_name: "${aws_s3_bucket.b.bucket_regional_domain_name}", origin_access_control_id: "${aws_cloudfront_origin_access_control.unsigned.id}" }] },
        },
      },
    },
    expected: [/^legacy: origin access identities are legacy/, /^oai: origin o reads a bucket without an origin access control/, /^oai: origin o uses an origin access identity/, /^never: origin o's access control must sign always/],
  },
  "cdn-tls": {
    fixture: {
      resource: {
        aws_cloudfront_distribution: {
          old: {
            viewer_certificate: { acm_certificate_arn: "${aws_acm_certificate_validation.c.certificate_arn}", minimum_protocol_version: "TLSv1_2016", ssl_support_method: "sni-only" },
            default_cache_behavior: { viewer_protocol_policy: "allow-all" },
          },
          shared: { viewer_certificate: { cloudfront_default_certificate: true } },
        },
      },
    },
    expected: [/^old: minimum_protocol_version/, /^old: a cache behavior allows plain HTTP/, /^shared: needs an ACM certificate/, /^shared: minimum_protocol_version/, /^shared: ssl_support_method/],
  },
  "bucket-multipart-abort": {
    fixture: bucket({
      aws_s3_bucket_lifecycle_configuration: {
        l: { bucket: bucketRef, rule: [{ status: "Enabled", filter: [{ prefix: "tmp/" }], abort_incomplete_multipart_upload: [{ days_after_initiation: 1 }] }] },
      },
    }),
    expected: [/^b: needs an enabled lifecycle rule over the whole bucket/],
  },
  "rds-not-public": { fixture: { resource: { aws_db_instance: { d: { publicly_accessible: true } } } }, expected: [/^d: publicly_accessible/] },
  "rds-encrypted": { fixture: { resource: { aws_db_instance: { d: {} } } }, expected: [/^d: storage_encrypted/] },
  "rds-backups": { fixture: { resource: { aws_db_instance: { d: { backup_retention_period: 0 } } } }, expected: [/^d: backup_retention_period/] },
  "rds-deletion-protection": { fixture: { resource: { aws_db_instance: { d: { deletion_protection: false } } } }, expected: [/^d: deletion_protection/] },
  "ami-in-ignore-changes": {
    fixture: {
      resource: {
        aws_instance: { i: { ami: "${data.aws_ami_ids.x.ids[0]}", lifecycle: { ignore_changes: ["tags"] } }, pinned: { ami: "ami-0123456789abcdef0" } },
        aws_launch_template: { lt: { image_id: "ami-${var.x}", lifecycle: { ignore_changes: ["ami"] } }, pinned: { image_id: "ami-0123abcd" } },
      },
    },
    expected: [/^i: .*"ami"/, /^lt: .*"image_id"/],
  },
  "ami-lookup-cannot-fail-plan": {
    fixture: { data: { aws_ami: { nixos: { owners: ["427812963091"], most_recent: true } }, aws_ami_ids: { ok: { owners: ["427812963091"] } } } },
    expected: [/^data\.aws_ami\.nixos: fails the plan/],
  },
  "eip-separate-from-instance": {
    fixture: { resource: { aws_eip: { tied: { instance: "${aws_instance.i.id}" }, loose: { domain: "vpc" } } } },
    expected: [/^tied: must not name its instance/, /^loose: has no aws_eip_association/],
  },
  "cloudflare-not-proxied": {
    fixture: { resource: { cloudflare_dns_record: { on: { proxied: true }, unset: {} } } },
    expected: [/^on: proxied must be false/, /^unset: proxied must be false/],
  },
  "no-secret-in-user-data-or-outputs": {
    fixture: {
      resource: {
        aws_instance: { i: { user_data: "token = ${aws_secretsmanager_secret_version.t.secret_string}" } },
        aws_launch_template: { lt: { user_data: "${base64encode(local.boot)}" } },
      },
      locals: { boot: "export LARDER_SERVER_TOKEN_HS256_SECRET_BASE64=c2VjcmV0" },
      output: { db: { value: "postgres://larder:hunter2@db.internal/larder" } },
    },
    expected: [/^i\.user_data: .*secret_version/, /^i\.user_data: .*secret_string/, /^lt\.user_data: /, /^output\.db: /],
  },
  "secret-values-not-in-terraform": {
    fixture: { resource: { random_password: { p: { length: 32 } }, aws_db_instance: { d: { password: "${random_password.p.result}" } } } },
    expected: [/^p: random_password/, /^d: set manage_master_user_password/],
  },
  "iam-s3-names-bucket-arn": {
    fixture: {
      resource: { aws_iam_role_policy: { literal: { policy: JSON.stringify({ Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: "arn:aws:s3:::*" }] }) } } },
      data: {
        aws_iam_policy_document: {
          d: { statement: [{ actions: ["s3:*"], resources: ["${aws_s3_bucket.b.arn}"] }, { actions: ["s3:PutObject"], resources: ["*"] }] },
        },
      },
    },
    expected: [/grants s3:\*/, /resource \* is not/, /resource arn:aws:s3:::\* is not/],
  },
  "ssm-scoped": {
    fixture: {
      resource: {
        aws_iam_role: { r: {} },
        aws_iam_role_policy_attachment: { core: { role: "${aws_iam_role.r.name}", policy_arn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" } },
        aws_iam_role_policy: { params: { policy: JSON.stringify({ Statement: [{ Effect: "Allow", Action: ["ssm:GetParametersByPath"], Resource: "*" }] }) } },
      },
      data: { aws_iam_policy_document: { d: { statement: [{ actions: ["ssm:*"], resources: ["*"] }, { actions: ["ssmmessages:OpenDataChannel"], resources: ["*"] }] } } },
    },
    expected: [/^core: attaches .*AmazonSSMManagedInstanceCore/, /statement\[0\]: grants ssm:\*/, /^params\.policy\[0\]: grants ssm:GetParametersByPath/],
  },
  "state-remote-and-locked": {
    fixture: { resource: { aws_instance: { i: {} } }, terraform: { backend: { s3: { bucket: "b", key: "k", encrypt: true } } } },
    expected: [/use_lockfile must be true/],
  },
};

describe("each rule catches its violation", () => {
  it("has a violating fixture for every rule", () => {
    expect(Object.keys(violating).sort()).toEqual(POLICY_RULES.map((r) => r.id).sort());
  });

  it.each(Object.entries(violating))("%s", (id, { fixture, expected }) => {
    const { violations } = rule(id).check(fixture);
    expect(violations).toHaveLength(expected.length);
    expected.forEach((pattern) => expect(violations.some((v) => pattern.test(v)), `${pattern} in ${violations.join(" | ")}`).toBe(true));
  });

  it("state: a stack with infrastructure but a local backend is refused", () => {
    expect(rule("state-remote-and-locked").check({ resource: { aws_db_instance: { d: {} } }, terraform: { backend: { local: { path: "x" } } } }).violations).toEqual([
      "terraform.backend: must be s3 (with use_lockfile)",
    ]);
  });

  it("checkPolicy prefixes each violation with its rule", () => {
    expect(checkPolicy({ resource: { aws_db_instance: { d: { publicly_accessible: true } } } })).toContain("rds-not-public: d: publicly_accessible must be false");
  });
});
