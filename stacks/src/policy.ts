// Policy over the synthesized Terraform JSON: the rules every deployment must keep, checked on what
// Terraform will actually receive (not on construct props, which an override or a new construct
// could bypass). synth.ts refuses to finish when a rule is broken; test/policy.test.ts runs each rule
// over every committed deployment and against a violating fixture.

/** The parts of a cdk.tf.json the rules read. */
export interface TerraformJson {
  readonly resource?: Record<string, Record<string, Block>>;
  readonly data?: Record<string, Record<string, Block>>;
  readonly output?: Record<string, Block>;
  readonly locals?: Record<string, unknown>;
  readonly terraform?: { readonly backend?: Record<string, Block> };
}
type Block = Record<string, unknown>;

export interface RuleResult {
  /** How many things the rule looked at; a rule that checked nothing proves nothing. */
  readonly checked: number;
  readonly violations: readonly string[];
}

export interface PolicyRule {
  readonly id: string;
  readonly description: string;
  check(tf: TerraformJson): RuleResult;
}

function entries(tf: TerraformJson, type: string, kind: "resource" | "data" = "resource"): [string, Block][] {
  return Object.entries(tf[kind]?.[type] ?? {});
}

/** cdktf writes a single nested block as an object and repeated ones as an array. */
function list(value: unknown): Block[] {
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]) as Block[];
}

function strings(value: unknown): string[] {
  return list(value).map((item) => String(item));
}

/** Whether `value` (any JSON) mentions `${type.name.` — a Terraform reference to that object. */
function refersTo(value: unknown, address: string): boolean {
  return JSON.stringify(value ?? null).includes(`\${${address}.`);
}

function result(checked: number, violations: string[]): RuleResult {
  return { checked, violations };
}

/** Resources of `type` whose `bucket` refers to the bucket. */
function forBucket(tf: TerraformJson, type: string, bucket: string): Block[] {
  return entries(tf, type)
    .filter(([, body]) => refersTo(body["bucket"], `aws_s3_bucket.${bucket}`))
    .map(([, body]) => body);
}

/** A policy (literal JSON or a policy-document reference) resolved to its statements. */
function statementsOf(tf: TerraformJson, policy: unknown): Block[] {
  const text = String(policy ?? "");
  const documents = entries(tf, "aws_iam_policy_document", "data").filter(([name]) => text.includes(`data.aws_iam_policy_document.${name}.json`));
  if (documents.length > 0) return documents.flatMap(([, body]) => list(body["statement"]));
  try {
    const parsed = JSON.parse(text) as { Statement?: unknown };
    return list(parsed.Statement).map((s) => ({
      effect: s["Effect"],
      principal: s["Principal"],
      actions: s["Action"],
      resources: s["Resource"],
      condition: s["Condition"],
    }));
  } catch {
    return [];
  }
}

const imdsv2: PolicyRule = {
  id: "imdsv2-required",
  description: "every instance and launch template requires IMDSv2 session tokens",
  check(tf) {
    const targets = [...entries(tf, "aws_instance"), ...entries(tf, "aws_launch_template")];
    const violations = targets
      .filter(([, body]) => list(body["metadata_options"])[0]?.["http_tokens"] !== "required")
      .map(([name]) => `${name}: metadata_options.http_tokens must be "required"`);
    return result(targets.length, violations);
  },
};

interface Ingress {
  readonly name: string;
  readonly protocol: string;
  readonly from: number;
  readonly to: number;
  readonly sources: string[];
}

function ingressRules(tf: TerraformJson): Ingress[] {
  const rules: Ingress[] = [];
  for (const [name, body] of entries(tf, "aws_vpc_security_group_ingress_rule")) {
    rules.push({
      name,
      protocol: String(body["ip_protocol"]),
      from: Number(body["from_port"] ?? 0),
      to: Number(body["to_port"] ?? 65535),
      sources: [...strings(body["cidr_ipv4"]), ...strings(body["cidr_ipv6"])],
    });
  }
  for (const [name, body] of entries(tf, "aws_security_group_rule")) {
    if (body["type"] !== "ingress") continue;
    rules.push({
      name,
      protocol: String(body["protocol"]),
      from: Number(body["from_port"]),
      to: Number(body["to_port"]),
      sources: [...strings(body["cidr_blocks"]), ...strings(body["ipv6_cidr_blocks"])],
    });
  }
  for (const [name, body] of entries(tf, "aws_security_group")) {
    list(body["ingress"]).forEach((rule, index) => {
      rules.push({
        name: `${name}.ingress[${index}]`,
        protocol: String(rule["protocol"]),
        from: Number(rule["from_port"]),
        to: Number(rule["to_port"]),
        sources: [...strings(rule["cidr_blocks"]), ...strings(rule["ipv6_cidr_blocks"])],
      });
    });
  }
  return rules;
}

const noWorldAdminPorts: PolicyRule = {
  id: "no-world-ssh-or-postgres",
  description: "no ingress from 0.0.0.0/0 or ::/0 reaches port 22 or 5432",
  check(tf) {
    const rules = ingressRules(tf);
    const violations: string[] = [];
    for (const rule of rules) {
      const allPorts = rule.protocol === "-1" || rule.protocol === "all";
      for (const port of [22, 5432]) {
        const covers = allPorts || (rule.from <= port && port <= rule.to);
        const world = rule.sources.filter((source) => source === "0.0.0.0/0" || source === "::/0");
        if (covers && world.length > 0) violations.push(`${rule.name}: port ${port} open to ${world.join(", ")}`);
      }
    }
    return result(rules.length, violations);
  },
};

function bucketRule(id: string, description: string, problem: (tf: TerraformJson, bucket: string, body: Block) => string | undefined): PolicyRule {
  return {
    id,
    description,
    check(tf) {
      const buckets = entries(tf, "aws_s3_bucket");
      const violations = buckets.flatMap(([name, body]) => {
        const found = problem(tf, name, body);
        return found === undefined ? [] : [`${name}: ${found}`];
      });
      return result(buckets.length, violations);
    },
  };
}

const bucketPrivate = bucketRule("bucket-private", "every bucket blocks public access and enforces bucket ownership (no ACLs)", (tf, name, body) => {
  const blocks = forBucket(tf, "aws_s3_bucket_public_access_block", name);
  const flags = ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"];
  if (!blocks.some((block) => flags.every((flag) => block[flag] === true))) return "needs a public access block with all four settings true";
  const ownership = forBucket(tf, "aws_s3_bucket_ownership_controls", name);
  if (!ownership.some((o) => list(o["rule"]).some((r) => r["object_ownership"] === "BucketOwnerEnforced"))) {
    return "needs ownership controls with BucketOwnerEnforced";
  }
  if (body["acl"] !== undefined || forBucket(tf, "aws_s3_bucket_acl", name).length > 0) return "must not set an ACL";
  return undefined;
});

const bucketEncrypted = bucketRule("bucket-encrypted", "every bucket has default server-side encryption", (tf, name) => {
  const configs = forBucket(tf, "aws_s3_bucket_server_side_encryption_configuration", name);
  const algorithms = configs.flatMap((c) => list(c["rule"])).flatMap((r) => list(r["apply_server_side_encryption_by_default"])).map((d) => d["sse_algorithm"]);
  return algorithms.some((a) => a === "AES256" || a === "aws:kms" || a === "aws:kms:dsse") ? undefined : "needs default encryption (AES256 or aws:kms)";
});

const bucketTlsOnly = bucketRule("bucket-tls-only", "every bucket policy denies requests without TLS", (tf, name) => {
  const statements = forBucket(tf, "aws_s3_bucket_policy", name).flatMap((p) => statementsOf(tf, p["policy"]));
  const denies = statements.some((s) => {
    if (s["effect"] !== "Deny") return false;
    const text = JSON.stringify(s["condition"] ?? null);
    return text.includes("aws:SecureTransport") && text.includes("false") && refersTo(s["resources"], `aws_s3_bucket.${name}`);
  });
  return denies ? undefined : "needs a bucket policy that denies aws:SecureTransport = false";
});

const bucketMultipartAbort = bucketRule("bucket-multipart-abort", "every bucket aborts incomplete multipart uploads", (tf, name) => {
  const rules = forBucket(tf, "aws_s3_bucket_lifecycle_configuration", name).flatMap((c) => list(c["rule"]));
  const aborts = rules.some((r) => {
    const days = list(r["abort_incomplete_multipart_upload"])[0]?.["days_after_initiation"];
    const wholeBucket = list(r["filter"]).every((f) => Object.keys(f).length === 0) && (r["prefix"] ?? "") === "";
    return r["status"] === "Enabled" && typeof days === "number" && days >= 1 && wholeBucket;
  });
  return aborts ? undefined : "needs an enabled lifecycle rule over the whole bucket with abort_incomplete_multipart_upload";
});

function databaseRule(id: string, description: string, problem: (body: Block) => string | undefined): PolicyRule {
  return {
    id,
    description,
    check(tf) {
      const databases = entries(tf, "aws_db_instance");
      const violations = databases.flatMap(([name, body]) => {
        const found = problem(body);
        return found === undefined ? [] : [`${name}: ${found}`];
      });
      return result(databases.length, violations);
    },
  };
}

const rdsPrivate = databaseRule("rds-not-public", "no database is publicly accessible", (db) =>
  db["publicly_accessible"] === false ? undefined : "publicly_accessible must be false");
const rdsEncrypted = databaseRule("rds-encrypted", "every database encrypts its storage", (db) =>
  db["storage_encrypted"] === true ? undefined : "storage_encrypted must be true");
const rdsBackups = databaseRule("rds-backups", "every database keeps automated backups", (db) =>
  typeof db["backup_retention_period"] === "number" && db["backup_retention_period"] >= 1 ? undefined : "backup_retention_period must be at least 1");
const rdsDeletionProtection = databaseRule("rds-deletion-protection", "every database has deletion protection", (db) =>
  db["deletion_protection"] === true ? undefined : "deletion_protection must be true");

const amiIgnored: PolicyRule = {
  id: "ami-in-ignore-changes",
  description: "a looked-up NixOS image never replaces a running instance (ami / image_id ignored unless pinned to a literal id)",
  check(tf) {
    const targets: [string, Block, string][] = [
      ...entries(tf, "aws_instance").map(([n, b]): [string, Block, string] => [n, b, "ami"]),
      ...entries(tf, "aws_launch_template").map(([n, b]): [string, Block, string] => [n, b, "image_id"]),
    ];
    const violations = targets
      .filter(([, body, attribute]) => {
        // An id written in the deployment changes only when the operator changes it: that is an upgrade.
        if (/^ami-[0-9a-f]+$/.test(String(body[attribute]))) return false;
        const ignored = (body["lifecycle"] as Block | undefined)?.["ignore_changes"];
        return !(ignored === "all" || strings(ignored).includes(attribute));
      })
      .map(([name, , attribute]) => `${name}: lifecycle.ignore_changes must include "${attribute}" (or pin a literal AMI id)`);
    return result(targets.length, violations);
  },
};

const amiLookupTolerant: PolicyRule = {
  id: "ami-lookup-cannot-fail-plan",
  description: "no aws_ami data source: it fails every plan and destroy once its images are deleted (use aws_ami_ids)",
  check(tf) {
    const lookups = entries(tf, "aws_ami", "data");
    const tolerant = entries(tf, "aws_ami_ids", "data");
    const violations = lookups.map(([name]) => `data.aws_ami.${name}: fails the plan when no image matches; use aws_ami_ids with a fallback`);
    return result(lookups.length + tolerant.length, violations);
  },
};

const eipSeparate: PolicyRule = {
  id: "eip-separate-from-instance",
  description: "Elastic IPs are attached by a separate association, so the address survives a new instance",
  check(tf) {
    const eips = entries(tf, "aws_eip");
    const associations = entries(tf, "aws_eip_association").map(([, body]) => body);
    const violations: string[] = [];
    for (const [name, body] of eips) {
      if (body["instance"] !== undefined || body["network_interface"] !== undefined) violations.push(`${name}: must not name its instance; use aws_eip_association`);
      else if (!associations.some((a) => refersTo(a["allocation_id"], `aws_eip.${name}`))) violations.push(`${name}: has no aws_eip_association`);
    }
    return result(eips.length, violations);
  },
};

const cloudflareNotProxied: PolicyRule = {
  id: "cloudflare-not-proxied",
  description: "Cloudflare records are DNS-only (the proxy cuts pushes over 100 s with HTTP 524)",
  check(tf) {
    const records = [...entries(tf, "cloudflare_dns_record"), ...entries(tf, "cloudflare_record")];
    const violations = records.filter(([, body]) => body["proxied"] !== false).map(([name]) => `${name}: proxied must be false`);
    return result(records.length, violations);
  },
};

// References and literals that would put a secret value into user data or an output.
const SECRET_REFERENCES = [
  /\$\{[^}]*aws_secretsmanager_secret_version\./,
  /\$\{[^}]*random_(password|string)\./,
  /\$\{[^}]*tls_private_key\./,
  /\$\{[^}]*\.(secret_string|secret_binary|password|master_password|private_key_pem)\b/,
];
const SECRET_LITERALS = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /\bAKIA[0-9A-Z]{16}\b/,
  /token-hs256-secret-base64\s*=/,
  /LARDER_SERVER_(TOKEN_HS256_SECRET_BASE64|DATABASE_URL)\s*=/,
  /postgres(?:ql)?:\/\/[^/\s:@]+:[^@\s]+@/,
];

export function secretProblems(text: string): string[] {
  return [...SECRET_REFERENCES, ...SECRET_LITERALS].filter((pattern) => pattern.test(text)).map((pattern) => `matches ${pattern.source}`);
}

const noSecretInUserDataOrOutputs: PolicyRule = {
  id: "no-secret-in-user-data-or-outputs",
  description: "user data and outputs carry no secret value, literal or referenced",
  check(tf) {
    const texts: [string, unknown][] = [];
    for (const type of ["aws_instance", "aws_launch_template"]) {
      for (const [name, body] of entries(tf, type)) {
        for (const attribute of ["user_data", "user_data_base64"]) {
          if (body[attribute] !== undefined) texts.push([`${name}.${attribute}`, body[attribute]]);
        }
      }
    }
    for (const [name, body] of Object.entries(tf.output ?? {})) texts.push([`output.${name}`, body["value"]]);
    // user_data = base64encode(local.x) is checked through the local it encodes.
    const withLocals = (value: unknown): string => {
      const text = JSON.stringify(value ?? null);
      const used = Object.entries(tf.locals ?? {}).filter(([name]) => text.includes(`local.${name}`));
      return [text, ...used.map(([, local]) => JSON.stringify(local))].join("\n");
    };
    const violations = texts.flatMap(([where, value]) => secretProblems(withLocals(value)).map((p) => `${where}: ${p}`));
    return result(texts.length, violations);
  },
};

const secretsOutOfTerraform: PolicyRule = {
  id: "secret-values-not-in-terraform",
  description: "Terraform never holds a secret value: no generated passwords or secret versions; RDS manages its password",
  check(tf) {
    const violations: string[] = [];
    for (const type of ["aws_secretsmanager_secret_version", "random_password", "random_string", "tls_private_key"]) {
      for (const [name] of entries(tf, type)) violations.push(`${name}: ${type} puts a secret value into the state`);
    }
    const databases = entries(tf, "aws_db_instance");
    for (const [name, body] of databases) {
      if (body["manage_master_user_password"] !== true || body["password"] !== undefined || body["password_wo"] !== undefined) {
        violations.push(`${name}: set manage_master_user_password = true and no password`);
      }
    }
    const secrets = entries(tf, "aws_secretsmanager_secret");
    return result(databases.length + secrets.length, violations);
  },
};

/** Every IAM statement of the stack, each with where it is written. */
function iamStatements(tf: TerraformJson): [string, Block][] {
  const statements: [string, Block][] = [];
  for (const [name, body] of entries(tf, "aws_iam_policy_document", "data")) {
    list(body["statement"]).forEach((s, index) => statements.push([`data.aws_iam_policy_document.${name}.statement[${index}]`, s]));
  }
  for (const type of ["aws_iam_role_policy", "aws_iam_policy", "aws_iam_user_policy", "aws_iam_group_policy"]) {
    for (const [name, body] of entries(tf, type)) {
      if (String(body["policy"]).includes("data.aws_iam_policy_document.")) continue;
      statementsOf(tf, body["policy"]).forEach((s, index) => statements.push([`${name}.policy[${index}]`, s]));
    }
  }
  return statements;
}

// Managed policies that let an instance read every SSM parameter (and more) in the account.
const BROAD_SSM_POLICIES = /arn:aws[a-z-]*:iam::aws:policy\/(?:AmazonSSMManagedInstanceCore|AmazonSSMFullAccess|AmazonSSMReadOnlyAccess|service-role\/AmazonEC2RoleforSSM)$/;

const ssmScoped: PolicyRule = {
  id: "ssm-scoped",
  description: "hosts get Session Manager's own actions, never a managed SSM policy or parameter reads",
  check(tf) {
    const violations: string[] = [];
    const attachments = [...entries(tf, "aws_iam_role_policy_attachment"), ...entries(tf, "aws_iam_role_policy_attachments_exclusive")];
    for (const [name, body] of attachments) {
      for (const arn of strings(body["policy_arn"] ?? body["policy_arns"])) {
        if (BROAD_SSM_POLICIES.test(arn)) violations.push(`${name}: attaches ${arn}; grant the Session Manager actions instead`);
      }
    }
    for (const [where, statement] of iamStatements(tf)) {
      if ((statement["effect"] ?? "Allow") !== "Allow") continue;
      for (const action of strings(statement["actions"])) {
        if (/^ssm:(?:\*|Get\*|GetParameter.*|GetDocument|DescribeParameters)$/i.test(action)) violations.push(`${where}: grants ${action}`);
      }
    }
    return result(entries(tf, "aws_iam_role").length, violations);
  },
};

const iamS3Scoped: PolicyRule = {
  id: "iam-s3-names-bucket-arn",
  description: "IAM statements granting S3 name a managed bucket's ARN, never *",
  check(tf) {
    let checked = 0;
    const violations: string[] = [];
    for (const [where, statement] of iamStatements(tf)) {
      if ((statement["effect"] ?? "Allow") !== "Allow") continue;
      const actions = strings(statement["actions"]);
      if (actions.includes("*")) {
        violations.push(`${where}: grants action *`);
        continue;
      }
      if (!actions.some((a) => a.toLowerCase().startsWith("s3:"))) continue;
      checked += 1;
      if (actions.some((a) => a.toLowerCase() === "s3:*")) violations.push(`${where}: grants s3:*`);
      for (const resource of strings(statement["resources"])) {
        if (!/\$\{aws_s3_bucket\.[A-Za-z0-9_-]+\.arn\}/.test(resource)) violations.push(`${where}: resource ${resource} is not a managed bucket's ARN`);
      }
    }
    return result(checked, violations);
  },
};

const stateLocked: PolicyRule = {
  id: "state-remote-and-locked",
  description: "stacks with infrastructure keep their state in S3, encrypted, with lockfile locking",
  check(tf) {
    const backend = tf.terraform?.backend ?? {};
    const s3 = backend["s3"];
    const hasInfrastructure = ["aws_instance", "aws_db_instance", "aws_vpc"].some((type) => entries(tf, type).length > 0);
    if (s3 === undefined) return result(hasInfrastructure ? 1 : 0, hasInfrastructure ? ["terraform.backend: must be s3 (with use_lockfile)"] : []);
    const violations: string[] = [];
    if (s3["use_lockfile"] !== true) violations.push("terraform.backend.s3.use_lockfile must be true");
    if (s3["encrypt"] !== true) violations.push("terraform.backend.s3.encrypt must be true");
    return result(1, violations);
  },
};

function distributions(tf: TerraformJson): [string, Block][] {
  return entries(tf, "aws_cloudfront_distribution");
}

const cdnOriginAccessControl: PolicyRule = {
  id: "cdn-origin-access-control",
  description: "CloudFront reads buckets with origin access control (SigV4, always signed), never an origin access identity",
  check(tf) {
    const violations = entries(tf, "aws_cloudfront_origin_access_identity").map(([name]) => `${name}: origin access identities are legacy; use an origin access control`);
    const controls = new Map(entries(tf, "aws_cloudfront_origin_access_control"));
    let checked = 0;
    for (const [name, body] of distributions(tf)) {
      for (const origin of list(body["origin"])) {
        if (!refersTo(origin["domain_name"], "aws_s3_bucket")) continue;
        checked++;
        const id = String(origin["origin_access_control_id"] ?? "");
        const control = [...controls].find(([controlName]) => id.includes(`aws_cloudfront_origin_access_control.${controlName}.`))?.[1];
        if (control === undefined) violations.push(`${name}: origin ${String(origin["origin_id"])} reads a bucket without an origin access control`);
        else if (control["signing_behavior"] !== "always" || control["signing_protocol"] !== "sigv4" || control["origin_access_control_origin_type"] !== "s3") {
          violations.push(`${name}: origin ${String(origin["origin_id"])}'s access control must sign always, with sigv4, for s3`);
        }
        if (list(origin["s3_origin_config"]).some((c) => String(c["origin_access_identity"] ?? "") !== "")) {
          violations.push(`${name}: origin ${String(origin["origin_id"])} uses an origin access identity`);
        }
      }
    }
    return result(checked, violations);
  },
};

const cdnTls: PolicyRule = {
  id: "cdn-tls",
  description: "every distribution serves its own certificate with TLS 1.2 or newer (SNI) and never plain HTTP content",
  check(tf) {
    const found = distributions(tf);
    const violations = found.flatMap(([name, body]) => {
      const problems: string[] = [];
      const certificate = list(body["viewer_certificate"])[0] ?? {};
      if (certificate["cloudfront_default_certificate"] === true || certificate["acm_certificate_arn"] === undefined) problems.push(`${name}: needs an ACM certificate for its name`);
      if (!/^TLSv1\.(2|3)_\d{4}$/.test(String(certificate["minimum_protocol_version"] ?? ""))) problems.push(`${name}: minimum_protocol_version must be TLSv1.2_* or newer`);
      if (certificate["ssl_support_method"] !== "sni-only") problems.push(`${name}: ssl_support_method must be sni-only`);
      const behaviors = [...list(body["default_cache_behavior"]), ...list(body["ordered_cache_behavior"])];
      if (behaviors.some((b) => b["viewer_protocol_policy"] === "allow-all")) problems.push(`${name}: a cache behavior allows plain HTTP (allow-all)`);
      return problems;
    });
    return result(found.length, violations);
  },
};

/** The bucket policies' Allow statements, with the bucket they belong to. */
function bucketGrants(tf: TerraformJson): [string, Block][] {
  return entries(tf, "aws_s3_bucket_policy").flatMap(([name, body]) =>
    statementsOf(tf, body["policy"]).filter((s) => s["effect"] === "Allow" || s["effect"] === undefined).map((s) => [name, s] as [string, Block]),
  );
}

const bucketGrantsScoped: PolicyRule = {
  id: "bucket-grants-scoped",
  description: "a bucket policy grants nobody anonymous access, and CloudFront only reads one prefix for one distribution",
  check(tf) {
    const grants = bucketGrants(tf);
    const violations = grants.flatMap(([name, s]) => {
      const principals = list(s["principals"]);
      // A policy document's principals blocks, or a literal policy's Principal ("*" or { Service: … }).
      const literal = s["principal"];
      const identifiers = [
        ...principals.flatMap((p) => strings(p["identifiers"])),
        ...(typeof literal === "string" ? [literal] : Object.values((literal ?? {}) as Record<string, unknown>).flatMap((v) => strings(v))),
      ];
      if (identifiers.includes("*")) return [`${name}: grants access to everyone`];
      if (!identifiers.includes("cloudfront.amazonaws.com")) return [];
      const problems: string[] = [];
      const conditions = list(s["condition"]);
      const scoped = conditions.some((c) => c["test"] === "StringEquals" && c["variable"] === "AWS:SourceArn" && strings(c["values"]).every((v) => v.includes("aws_cloudfront_distribution.")));
      if (!scoped) problems.push(`${name}: CloudFront's grant needs StringEquals AWS:SourceArn on its distribution`);
      if (strings(s["actions"]).some((a) => a !== "s3:GetObject")) problems.push(`${name}: CloudFront may only s3:GetObject`);
      // "<bucket arn>/<prefix>/*", never the whole bucket.
      if (!strings(s["resources"]).every((r) => /^\$\{aws_s3_bucket\.[^}]+\.arn\}\/[a-z0-9._-]+(\/[a-z0-9._-]+)*\/\*$/.test(r))) {
        problems.push(`${name}: CloudFront's grant must be limited to the layouts' prefix`);
      }
      return problems;
    });
    return result(grants.length, violations);
  },
};

export const POLICY_RULES: readonly PolicyRule[] = [
  imdsv2,
  noWorldAdminPorts,
  bucketPrivate,
  bucketEncrypted,
  bucketTlsOnly,
  bucketMultipartAbort,
  bucketGrantsScoped,
  cdnOriginAccessControl,
  cdnTls,
  rdsPrivate,
  rdsEncrypted,
  rdsBackups,
  rdsDeletionProtection,
  amiIgnored,
  amiLookupTolerant,
  eipSeparate,
  cloudflareNotProxied,
  noSecretInUserDataOrOutputs,
  secretsOutOfTerraform,
  iamS3Scoped,
  ssmScoped,
  stateLocked,
];

/** Every violation in one stack, prefixed with its rule id. */
export function checkPolicy(tf: TerraformJson): string[] {
  return POLICY_RULES.flatMap((rule) => rule.check(tf).violations.map((v) => `${rule.id}: ${v}`));
}
