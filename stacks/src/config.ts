// The typed deployment config: what a file in stacks/deployments/ writes (DeploymentInput), and the
// checked, defaulted record the constructs receive (Deployment). Every mistake is reported with the
// field's path, at synth time, before Terraform ever runs.
import { checkAnyCidr, isWholeInternet, parseIpv4Cidr } from "./cidr.ts";

export type DnsProvider = "route53" | "cloudflare" | "none";
export type Architecture = "arm64" | "x86_64";
export type DatabaseTls = "verify-full" | "no-verify";
export type CdnPriceClass = "PriceClass_100" | "PriceClass_200" | "PriceClass_All";

/**
 * A tarball of one revision and its Nix hash, or a flake reference naming a rev. `netrcSecretArn`:
 * a Secrets Manager secret holding a netrc file (`machine … login … password …`) for a private source
 * or a private binary cache; hosts install it as /etc/nix/netrc before they fetch anything.
 */
export type LarderSource =
  | { readonly url: string; readonly sha256: string; readonly netrcSecretArn?: string }
  | { readonly flake: string; readonly netrcSecretArn?: string };

/** A release NixOS supports today (https://nixos.org/manual/nixos/stable/release-notes); see docs/AWS.md to bump it. */
export const DEFAULT_NIXOS_RELEASE = "26.05";

export interface DeploymentInput {
  /** Short name (lowercase letters, digits, dashes; ≤ 20). The stack is `larder-<name>`. */
  readonly name: string;
  /** The AWS account (12 digits). Terraform refuses to touch any other account. */
  readonly accountId: string;
  /** AWS region, e.g. "eu-central-1". */
  readonly region: string;
  /** Exactly two availability zones of the region, e.g. ["eu-central-1a", "eu-central-1b"]. */
  readonly availabilityZones: readonly string[];
  /** The VPC's IPv4 range, /16 to /24, split into two public and two private subnets. Default 10.0.0.0/16. */
  readonly vpcCidr?: string;
  /**
   * Where hosts fetch larder from, pinned to one revision (never a branch): a tarball and its Nix hash
   * (this repository, a fork, or a private repository's archive URL), or a flake reference with a rev.
   */
  readonly larderSource: LarderSource;
  /**
   * NixOS release whose official AMI new hosts boot when `amiId` is not set. Default DEFAULT_NIXOS_RELEASE.
   * Changing it affects only instances launched later; see docs/AWS.md, "Upgrading NixOS".
   */
  readonly nixosRelease?: string;
  /**
   * An explicit AMI (of this region and host.architecture) instead of the newest official image of
   * nixosRelease. A pinned id makes plans independent of the image lookup; changing it replaces the
   * hosts on the next deploy (a rolling refresh when scaled out).
   */
  readonly amiId?: string;
  /**
   * A binary cache that holds larder's closure (e.g. your larder cache, filled by CI): hosts substitute
   * from it instead of building larder, so a new instance is serving in minutes.
   */
  readonly binaryCache?: {
    /** Substituter URL, e.g. "https://cache.example.com/main". */
    readonly url: string;
    /** The cache's public key, "name:base64". */
    readonly publicKey: string;
  };
  readonly host?: {
    /** EC2 type of the single host (and of the garbage collector when scaled out). Default t4g.large. */
    readonly instanceType?: string;
    /** Must match the instance type's CPU. Default arm64. */
    readonly architecture?: Architecture;
    /** gp3 root volume: the Nix store and the upload spool (data lives in RDS and S3). Default 30. */
    readonly rootVolumeGiB?: number;
    /** The disk alarm fires when any host's root file system is fuller than this, in percent. Default 80. */
    readonly diskAlarmPercent?: number;
  };
  /** Where CloudWatch alarms (disk) are sent by e-mail; without it they only show in the console and on the SNS topic. */
  readonly alarmEmail?: string;
  /** CIDRs allowed to reach port 22. Empty by default: use SSM Session Manager instead. */
  readonly adminCidrs?: readonly string[];
  readonly database?: {
    /** Default db.t4g.small. */
    readonly instanceClass?: string;
    /** Initial storage. Default 20. */
    readonly allocatedStorageGiB?: number;
    /** RDS grows storage up to this on its own, so a full disk never stops PostgreSQL. Default 100. */
    readonly maxAllocatedStorageGiB?: number;
    /** Days of automated backups (point-in-time recovery), 1–35. Default 7. */
    readonly backupRetentionDays?: number;
    /** Default false. */
    readonly multiAz?: boolean;
    /** Default true; turn off only to tear the deployment down on purpose. */
    readonly deletionProtection?: boolean;
    /** PostgreSQL major (or major.minor) version. Default "16". */
    readonly engineVersion?: string;
    /**
     * "verify-full" (default): hosts check the database's certificate against the RDS CA bundle.
     * "no-verify": encrypted but unchecked; an explicit opt-in for networks you trust.
     */
    readonly tls?: DatabaseTls;
  };
  readonly dns?: {
    /** Who serves the domain's DNS. "none": you point the name yourself (or use the bare IP). */
    readonly provider: DnsProvider;
    /** The cache's host name, e.g. "cache.example.com". Required unless provider is none. */
    readonly domain?: string;
    /** route53: the hosted zone's name (e.g. "example.com"); cloudflare: the zone id (32 hex digits). */
    readonly zone?: string;
  };
  /** Contact for Let's Encrypt; required when a single host serves a domain (it gets its own certificate). */
  readonly acmeEmail?: string;
  /**
   * Publish the bucket layouts of public caches (caches with bucket_layout on) through CloudFront:
   * clients substitute from https://<domain>/<cache> while larderd may be down. The bucket stays
   * private; CloudFront reads only <prefix>/ with origin access control. Needs dns.provider route53
   * or cloudflare (the certificate is validated and the name published there).
   */
  readonly cdn?: {
    /** The CDN's host name, e.g. "nix.example.com" (not dns.domain, which stays larderd's). */
    readonly domain: string;
    /** Key prefix of the layouts in the bucket (larderd's bucket-layout.prefix). Default "public". */
    readonly prefix?: string;
    /** CloudFront price class: PriceClass_100 (default; North America, Europe, Israel), PriceClass_200 or PriceClass_All. */
    readonly priceClass?: CdnPriceClass;
  };
  readonly scaleOut?: {
    /** N api-server instances behind a load balancer plus one garbage-collector instance. */
    readonly enabled: boolean;
    /** Instances the auto-scaling group keeps (its minimum and desired size). Default 2. */
    readonly apiServers?: number;
    /** Upper bound of the group. Default apiServers. */
    readonly maxApiServers?: number;
    /** Default host.instanceType. */
    readonly instanceType?: string;
    /**
     * Minutes a new api server may take to boot before failed health checks replace it. Its first
     * boot builds larder unless binaryCache has it; too short a grace replaces servers in a loop.
     * Default 40 (20 with binaryCache).
     */
    readonly bootGraceMinutes?: number;
  };
  readonly storage?: {
    /** Deleted or overwritten cache objects stay recoverable (bucket versioning) this many days. Default 14. */
    readonly deletedObjectRetentionDays?: number;
  };
  /** Extra tags on every AWS resource. */
  readonly tags?: Readonly<Record<string, string>>;
}

export interface Deployment {
  readonly name: string;
  readonly accountId: string;
  readonly region: string;
  readonly availabilityZones: readonly [string, string];
  readonly vpcCidr: string;
  readonly larderSource: LarderSource;
  readonly nixosRelease: string;
  readonly amiId: string | undefined;
  readonly binaryCache: { readonly url: string; readonly publicKey: string } | undefined;
  readonly host: { readonly instanceType: string; readonly architecture: Architecture; readonly rootVolumeGiB: number; readonly diskAlarmPercent: number };
  readonly alarmEmail: string | undefined;
  readonly adminCidrs: readonly string[];
  readonly database: {
    readonly instanceClass: string;
    readonly allocatedStorageGiB: number;
    readonly maxAllocatedStorageGiB: number;
    readonly backupRetentionDays: number;
    readonly multiAz: boolean;
    readonly deletionProtection: boolean;
    readonly engineVersion: string;
    readonly tls: DatabaseTls;
  };
  readonly dns: { readonly provider: DnsProvider; readonly domain: string | undefined; readonly zone: string | undefined };
  readonly acmeEmail: string | undefined;
  readonly cdn: { readonly domain: string; readonly prefix: string; readonly priceClass: CdnPriceClass } | undefined;
  readonly scaleOut:
    | { readonly enabled: false }
    | {
        readonly enabled: true;
        readonly apiServers: number;
        readonly maxApiServers: number;
        readonly instanceType: string;
        readonly bootGraceMinutes: number;
      };
  readonly storage: { readonly deletedObjectRetentionDays: number };
  readonly tags: Readonly<Record<string, string>>;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const NAME = /^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$/;
// Commercial, GovCloud and ISO partitions: us-east-1, ap-southeast-4, us-gov-west-1, us-isob-east-1.
const REGION = /^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$/;
const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const NIX32_SHA256 = /^[0-9abcdfghijklmnpqrsvwxyz]{52}$/;
const SRI_SHA256 = /^sha256-[A-Za-z0-9+/]{43}=$/;
const AMI_ID = /^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const PUBLIC_KEY = /^[A-Za-z0-9._-]+:[A-Za-z0-9+/]{43}=$/;
const EMAIL = /^[^@\s"\\]+@[^@\s"\\]+\.[^@\s"\\]+$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+$/;
// A flake reference pinned to one commit: github:o/r/<rev>, or any URL form with rev=<40 hex>.
const PINNED_FLAKE = /^(?:(?:github|gitlab|sourcehut):[A-Za-z0-9._~-]+\/[A-Za-z0-9._-]+\/[0-9a-f]{40}|[a-z+]+:\/\/[^\s"\\]*[?&]rev=[0-9a-f]{40})(?:[?&][^\s"\\]*)?$/;
const INSTANCE_TYPE = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9]+)$/;

/** Graviton families carry a "g" after the generation digit (t4g, m7gd, c7gn); a1 is the one exception. */
export function architectureOf(instanceType: string): Architecture | undefined {
  const match = INSTANCE_TYPE.exec(instanceType);
  if (match === null) return undefined;
  const [, family, generation, suffix] = match;
  if (family === "a" && generation === "1") return "arm64";
  return (suffix ?? "").includes("g") ? "arm64" : "x86_64";
}

/** Collects problems as "field: what is wrong" so one run reports them all. */
class Problems {
  readonly list: string[] = [];
  add(field: string, message: string): void {
    this.list.push(`${field}: ${message}`);
  }
}

function checkKeys(problems: Problems, field: string, value: unknown, allowed: readonly string[]): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    problems.add(field, "must be an object");
    return false;
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) problems.add(field === "" ? key : `${field}.${key}`, `unknown key (allowed: ${allowed.join(", ")})`);
  }
  return true;
}

function integer(problems: Problems, field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(field, `${String(value)} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function checkInstanceType(problems: Problems, field: string, instanceType: string, architecture: Architecture): void {
  const actual = architectureOf(instanceType);
  if (actual === undefined) problems.add(field, `"${instanceType}" is not an EC2 instance type like t4g.large`);
  else if (actual !== architecture) {
    problems.add(field, `"${instanceType}" is an ${actual} type but host.architecture is ${architecture}; change one of them`);
  }
}

function checkLarderSource(problems: Problems, source: LarderSource): void {
  const isFlake = typeof source === "object" && source !== null && "flake" in source;
  if (!checkKeys(problems, "larderSource", source, isFlake ? ["flake", "netrcSecretArn"] : ["url", "sha256", "netrcSecretArn"])) return;
  if ("flake" in source) {
    if (!PINNED_FLAKE.test(String(source.flake))) {
      problems.add("larderSource.flake", `"${String(source.flake)}" must name one commit, like github:owner/larder/<40-hex rev> or git+https://…?rev=<40-hex rev>`);
    }
  } else {
    if (typeof source.url !== "string" || !/^https:\/\/[^\s"\\]+$/.test(source.url)) {
      problems.add("larderSource.url", "must be an https:// tarball URL of one fixed revision");
    }
    const hash = String(source.sha256);
    if (!NIX32_SHA256.test(hash) && !SRI_SHA256.test(hash)) {
      problems.add("larderSource.sha256", "must be a Nix sha256 (52 base-32 characters or sha256-…=); get it with nix-prefetch-url --unpack URL");
    }
  }
  if (source.netrcSecretArn !== undefined && !SECRET_ARN.test(String(source.netrcSecretArn))) {
    problems.add("larderSource.netrcSecretArn", `"${String(source.netrcSecretArn)}" is not a Secrets Manager secret ARN`);
  }
}

const TOP_KEYS = [
  "name", "accountId", "region", "availabilityZones", "vpcCidr", "larderSource", "nixosRelease", "amiId", "binaryCache",
  "host", "alarmEmail", "adminCidrs", "database", "dns", "acmeEmail", "cdn", "scaleOut", "storage", "tags",
] as const;

/** Checks a deployment and fills in defaults; throws one ConfigError listing every problem by field. */
export function parseDeployment(input: DeploymentInput): Deployment {
  const problems = new Problems();
  if (!checkKeys(problems, "", input, TOP_KEYS)) throw new ConfigError(`deployment: ${problems.list.join("; ")}`);
  const label = typeof input.name === "string" ? input.name : "?";

  if (typeof input.name !== "string" || !NAME.test(input.name)) {
    problems.add("name", `"${String(input.name)}" must be 1-20 lowercase letters, digits or dashes, starting with a letter`);
  }
  if (typeof input.accountId !== "string" || !/^\d{12}$/.test(input.accountId)) {
    problems.add("accountId", `"${String(input.accountId)}" must be the 12-digit AWS account id`);
  }
  const regionOk = typeof input.region === "string" && REGION.test(input.region);
  if (!regionOk) problems.add("region", `"${String(input.region)}" is not an AWS region name like eu-central-1`);

  const zones = Array.isArray(input.availabilityZones) ? input.availabilityZones : [];
  if (zones.length !== 2 || zones[0] === zones[1]) {
    problems.add("availabilityZones", "must list exactly two different zones, e.g. [\"eu-central-1a\", \"eu-central-1b\"]");
  }
  zones.forEach((zone, index) => {
    if (regionOk && !new RegExp(`^${input.region}[a-z]$`).test(String(zone))) {
      problems.add(`availabilityZones[${index}]`, `"${String(zone)}" is not a zone of ${input.region} (like ${input.region}a)`);
    }
  });

  const vpcCidr = input.vpcCidr ?? "10.0.0.0/16";
  const vpc = parseIpv4Cidr(vpcCidr);
  if (typeof vpc === "string") problems.add("vpcCidr", vpc);
  else if (vpc.prefix < 16 || vpc.prefix > 24) problems.add("vpcCidr", `"${vpcCidr}" must be between /16 and /24 (AWS limits)`);

  checkLarderSource(problems, input.larderSource);
  const nixosRelease = input.nixosRelease ?? DEFAULT_NIXOS_RELEASE;
  if (typeof nixosRelease !== "string" || !/^\d{2}\.(?:05|11)$/.test(nixosRelease)) {
    problems.add("nixosRelease", `"${String(nixosRelease)}" must be a NixOS release like ${DEFAULT_NIXOS_RELEASE}`);
  }
  if (input.amiId !== undefined && !AMI_ID.test(String(input.amiId))) {
    problems.add("amiId", `"${String(input.amiId)}" is not an AMI id like ami-0123456789abcdef0`);
  }
  if (input.binaryCache !== undefined && checkKeys(problems, "binaryCache", input.binaryCache, ["url", "publicKey"])) {
    if (!/^https:\/\/[^\s"\\]+$/.test(String(input.binaryCache.url))) problems.add("binaryCache.url", "must be an https:// substituter URL");
    if (!PUBLIC_KEY.test(String(input.binaryCache.publicKey))) {
      problems.add("binaryCache.publicKey", "must be the cache's public key, name:base64 (e.g. main:AbC…=)");
    }
  }
  if (input.alarmEmail !== undefined && !EMAIL.test(String(input.alarmEmail))) problems.add("alarmEmail", `"${String(input.alarmEmail)}" is not an e-mail address`);

  const hostIn = input.host ?? {};
  checkKeys(problems, "host", hostIn, ["instanceType", "architecture", "rootVolumeGiB", "diskAlarmPercent"]);
  const architecture = hostIn.architecture ?? "arm64";
  if (architecture !== "arm64" && architecture !== "x86_64") {
    problems.add("host.architecture", `"${String(architecture)}" must be arm64 or x86_64`);
  }
  const host = {
    instanceType: hostIn.instanceType ?? "t4g.large",
    architecture,
    rootVolumeGiB: integer(problems, "host.rootVolumeGiB", hostIn.rootVolumeGiB ?? 30, 20, 16384),
    diskAlarmPercent: integer(problems, "host.diskAlarmPercent", hostIn.diskAlarmPercent ?? 80, 10, 99),
  };
  checkInstanceType(problems, "host.instanceType", host.instanceType, architecture);

  const adminCidrs = input.adminCidrs ?? [];
  adminCidrs.forEach((cidr, index) => {
    const field = `adminCidrs[${index}]`;
    const problem = checkAnyCidr(String(cidr));
    if (problem !== undefined) problems.add(field, problem);
    else if (isWholeInternet(cidr)) problems.add(field, `${cidr} opens SSH to the whole internet; list your own addresses or use SSM Session Manager`);
  });

  const dbIn = input.database ?? {};
  checkKeys(problems, "database", dbIn, [
    "instanceClass", "allocatedStorageGiB", "maxAllocatedStorageGiB", "backupRetentionDays", "multiAz", "deletionProtection", "engineVersion", "tls",
  ]);
  const database = {
    instanceClass: dbIn.instanceClass ?? "db.t4g.small",
    allocatedStorageGiB: integer(problems, "database.allocatedStorageGiB", dbIn.allocatedStorageGiB ?? 20, 20, 65536),
    maxAllocatedStorageGiB: integer(problems, "database.maxAllocatedStorageGiB", dbIn.maxAllocatedStorageGiB ?? 100, 20, 65536),
    backupRetentionDays: integer(problems, "database.backupRetentionDays", dbIn.backupRetentionDays ?? 7, 1, 35),
    multiAz: dbIn.multiAz ?? false,
    deletionProtection: dbIn.deletionProtection ?? true,
    engineVersion: dbIn.engineVersion ?? "16",
    tls: dbIn.tls ?? "verify-full",
  };
  if (database.tls !== "verify-full" && database.tls !== "no-verify") {
    problems.add("database.tls", `"${String(database.tls)}" must be verify-full or no-verify`);
  }
  if (!/^db\.[a-z0-9]+\.[a-z0-9]+$/.test(database.instanceClass)) {
    problems.add("database.instanceClass", `"${database.instanceClass}" is not an RDS class like db.t4g.small`);
  }
  if (database.maxAllocatedStorageGiB < database.allocatedStorageGiB) {
    problems.add("database.maxAllocatedStorageGiB", "must be at least database.allocatedStorageGiB");
  }
  const major = /^(\d+)(?:\.\d+)?$/.exec(database.engineVersion);
  if (major === null || Number(major[1]) < 14) {
    problems.add("database.engineVersion", `"${database.engineVersion}" must be a PostgreSQL version, 14 or newer, like "16"`);
  }

  const dnsIn = input.dns ?? { provider: "none" as const };
  checkKeys(problems, "dns", dnsIn, ["provider", "domain", "zone"]);
  const dns = { provider: dnsIn.provider, domain: dnsIn.domain, zone: dnsIn.zone };
  if (!["route53", "cloudflare", "none"].includes(dns.provider)) {
    problems.add("dns.provider", `"${String(dns.provider)}" must be route53, cloudflare or none`);
  }
  if (dns.domain !== undefined && !HOSTNAME.test(dns.domain)) {
    problems.add("dns.domain", `"${dns.domain}" is not a lowercase host name like cache.example.com`);
  }
  if (dns.provider !== "none" && dns.domain === undefined) {
    problems.add("dns.domain", `is required when dns.provider is ${dns.provider}`);
  }
  if (dns.provider === "route53") {
    if (dns.zone === undefined || !HOSTNAME.test(dns.zone)) {
      problems.add("dns.zone", "must be the Route53 hosted zone's name, e.g. example.com");
    } else if (dns.domain !== undefined && dns.domain !== dns.zone && !dns.domain.endsWith(`.${dns.zone}`)) {
      problems.add("dns.zone", `"${dns.zone}" does not contain dns.domain "${dns.domain}"`);
    }
  }
  if (dns.provider === "cloudflare" && (dns.zone === undefined || !/^[0-9a-f]{32}$/.test(dns.zone))) {
    problems.add("dns.zone", "must be the Cloudflare zone id (32 hex digits, on the zone's Overview page)");
  }
  if (dns.provider === "none" && dns.zone !== undefined) problems.add("dns.zone", "is only used with route53 or cloudflare");

  let cdn: Deployment["cdn"];
  if (input.cdn !== undefined && checkKeys(problems, "cdn", input.cdn, ["domain", "prefix", "priceClass"])) {
    cdn = { domain: input.cdn.domain, prefix: input.cdn.prefix ?? "public", priceClass: input.cdn.priceClass ?? "PriceClass_100" };
    if (typeof cdn.domain !== "string" || !HOSTNAME.test(cdn.domain)) {
      problems.add("cdn.domain", `"${String(cdn.domain)}" is not a lowercase host name like nix.example.com`);
    } else if (cdn.domain === dns.domain) {
      problems.add("cdn.domain", "must differ from dns.domain, which names larderd (the CDN serves only the public layouts)");
    } else if (dns.provider === "route53" && dns.zone !== undefined && cdn.domain !== dns.zone && !cdn.domain.endsWith(`.${dns.zone}`)) {
      problems.add("cdn.domain", `"${cdn.domain}" is not in the Route53 zone "${dns.zone}"`);
    }
    if (dns.provider === "none") problems.add("cdn", "needs dns.provider route53 or cloudflare (the CDN's certificate is validated and its name published there)");
    // The same rule as larderd's bucket-layout.prefix.
    if (typeof cdn.prefix !== "string" || !/^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/.test(cdn.prefix)) {
      problems.add("cdn.prefix", `"${String(cdn.prefix)}" must be lowercase path segments without leading or trailing '/', like public`);
    }
    if (!["PriceClass_100", "PriceClass_200", "PriceClass_All"].includes(cdn.priceClass)) {
      problems.add("cdn.priceClass", `"${String(cdn.priceClass)}" must be PriceClass_100, PriceClass_200 or PriceClass_All`);
    }
  }

  const scaleIn = input.scaleOut ?? { enabled: false };
  checkKeys(problems, "scaleOut", scaleIn, ["enabled", "apiServers", "maxApiServers", "instanceType", "bootGraceMinutes"]);
  let scaleOut: Deployment["scaleOut"] = { enabled: false };
  if (typeof scaleIn.enabled !== "boolean") problems.add("scaleOut.enabled", "must be true or false");
  if (scaleIn.enabled === true) {
    const apiServers = scaleIn.apiServers ?? 2;
    if (!Number.isInteger(apiServers) || apiServers < 1) {
      problems.add("scaleOut.apiServers", `${String(apiServers)}: scale-out needs at least 1 api server (or set scaleOut.enabled to false)`);
    }
    const maxApiServers = integer(problems, "scaleOut.maxApiServers", scaleIn.maxApiServers ?? apiServers, Math.max(1, apiServers), 50);
    const instanceType = scaleIn.instanceType ?? host.instanceType;
    checkInstanceType(problems, "scaleOut.instanceType", instanceType, architecture);
    if (dns.provider === "none") {
      problems.add("dns.provider", "scale-out needs route53 or cloudflare so the load balancer's certificate can be validated");
    }
    const bootGraceMinutes = integer(problems, "scaleOut.bootGraceMinutes", scaleIn.bootGraceMinutes ?? (input.binaryCache === undefined ? 40 : 20), 5, 120);
    scaleOut = { enabled: true, apiServers, maxApiServers, instanceType, bootGraceMinutes };
  } else if (dns.domain !== undefined && (input.acmeEmail === undefined || !EMAIL.test(input.acmeEmail))) {
    problems.add("acmeEmail", "a single host serving dns.domain gets a Let's Encrypt certificate; give a contact address like ops@example.com");
  }

  const storageIn = input.storage ?? {};
  checkKeys(problems, "storage", storageIn, ["deletedObjectRetentionDays"]);
  const storage = {
    deletedObjectRetentionDays: integer(problems, "storage.deletedObjectRetentionDays", storageIn.deletedObjectRetentionDays ?? 14, 1, 3650),
  };

  const tags = input.tags ?? {};
  for (const [key, value] of Object.entries(tags)) {
    if (key.startsWith("aws:") || key.length === 0 || key.length > 128) problems.add(`tags.${key}`, "tag keys are 1-128 characters and may not start with aws:");
    if (typeof value !== "string" || value.length > 256) problems.add(`tags.${key}`, "tag values are strings of at most 256 characters");
  }

  if (problems.list.length > 0) throw new ConfigError(`deployment "${label}": ${problems.list.join("; ")}`);
  return Object.freeze({
    name: input.name,
    accountId: input.accountId,
    region: input.region,
    availabilityZones: [zones[0] ?? "", zones[1] ?? ""] as const,
    vpcCidr,
    larderSource: { ...input.larderSource },
    nixosRelease,
    amiId: input.amiId,
    binaryCache: input.binaryCache === undefined ? undefined : { ...input.binaryCache },
    host,
    alarmEmail: input.alarmEmail,
    adminCidrs: [...adminCidrs],
    database,
    dns,
    acmeEmail: input.acmeEmail,
    cdn,
    scaleOut,
    storage,
    tags: { ...tags },
  });
}

