import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_NIXOS_RELEASE, architectureOf, parseDeployment } from "../src/config.ts";
import type { DeploymentInput } from "../src/config.ts";
import { validInput } from "./helpers.ts";

function problemWith(change: (input: ReturnType<typeof validInput>) => void): string {
  const input = validInput();
  change(input);
  try {
    parseDeployment(input as DeploymentInput);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("parseDeployment", () => {
  it("accepts a valid deployment and fills in the defaults", () => {
    const deployment = parseDeployment(validInput() as DeploymentInput);
    expect(deployment.host).toEqual({ instanceType: "t4g.large", architecture: "arm64", rootVolumeGiB: 30, diskAlarmPercent: 80 });
    expect(deployment.adminCidrs).toEqual([]);
    expect(deployment.database.deletionProtection).toBe(true);
    expect(deployment.database.maxAllocatedStorageGiB).toBe(100);
    expect(deployment.scaleOut).toEqual({ enabled: false });
    expect(Object.isFrozen(deployment)).toBe(true);
  });

  it("defaults to a supported NixOS release, verified database TLS and an 80% disk alarm", () => {
    const input = validInput();
    delete input.nixosRelease;
    const deployment = parseDeployment(input as DeploymentInput);
    expect(deployment.nixosRelease).toBe(DEFAULT_NIXOS_RELEASE);
    expect(deployment.amiId).toBeUndefined();
    expect(deployment.database.tls).toBe("verify-full");
    expect(deployment.host.diskAlarmPercent).toBe(80);
  });

  it("accepts a pinned AMI, a binary cache, a flake source and a private source's netrc", () => {
    const input = validInput();
    input.amiId = "ami-0123456789abcdef0";
    input.binaryCache = { url: "https://cache.example.net/main", publicKey: "main:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" };
    input.larderSource = { flake: "github:me/larder/0123456789abcdef0123456789abcdef01234567", netrcSecretArn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:netrc-AbC" };
    const deployment = parseDeployment(input as DeploymentInput);
    expect(deployment.amiId).toBe("ami-0123456789abcdef0");
    expect(deployment.binaryCache?.url).toBe("https://cache.example.net/main");
    expect(deployment.larderSource).toEqual(input.larderSource);
  });

  it("fills in scale-out defaults", () => {
    const input = validInput();
    input.scaleOut = { enabled: true };
    expect(parseDeployment(input as DeploymentInput).scaleOut).toEqual({ enabled: true, apiServers: 2, maxApiServers: 2, instanceType: "t4g.large", bootGraceMinutes: 40 });
  });
});

describe("invalid configs fail with the field's name", () => {
  it("bad VPC CIDR: not a CIDR", () => {
    expect(problemWith((c) => (c.vpcCidr = "10.0.0.0/33"))).toMatch(/vpcCidr: .*prefix longer than \/32/);
    expect(problemWith((c) => (c.vpcCidr = "ten.0.0.0/16"))).toMatch(/vpcCidr: "ten.0.0.0\/16" is not an IPv4 CIDR/);
  });

  it("bad VPC CIDR: host bits set, with the intended network suggested", () => {
    expect(problemWith((c) => (c.vpcCidr = "10.20.1.0/16"))).toMatch(/vpcCidr: .*host bits set; did you mean 10\.20\.0\.0\/16/);
  });

  it("bad VPC CIDR: outside /16../24", () => {
    expect(problemWith((c) => (c.vpcCidr = "10.0.0.0/8"))).toMatch(/vpcCidr: "10.0.0.0\/8" must be between \/16 and \/24/);
  });

  it("bad admin CIDR", () => {
    expect(problemWith((c) => (c.adminCidrs = ["203.0.113.0/24", "203.0.113.7"]))).toMatch(/adminCidrs\[1\]: "203.0.113.7" is not an IPv4 CIDR/);
    expect(problemWith((c) => (c.adminCidrs = ["2001:db8::/200"]))).toMatch(/adminCidrs\[0\]: .*IPv6/);
  });

  it("admin CIDR that opens SSH to the internet", () => {
    expect(problemWith((c) => (c.adminCidrs = ["0.0.0.0/0"]))).toMatch(/adminCidrs\[0\]: 0.0.0.0\/0 opens SSH to the whole internet/);
    expect(problemWith((c) => (c.adminCidrs = ["::/0"]))).toMatch(/adminCidrs\[0\]: ::\/0 opens SSH/);
  });

  it("domain missing while DNS is route53", () => {
    expect(problemWith((c) => (c.dns = { provider: "route53", zone: "example.net" }))).toMatch(/dns\.domain: is required when dns\.provider is route53/);
  });

  it("domain missing while DNS is cloudflare", () => {
    expect(problemWith((c) => (c.dns = { provider: "cloudflare", zone: "0123456789abcdef0123456789abcdef" }))).toMatch(
      /dns\.domain: is required when dns\.provider is cloudflare/,
    );
  });

  it("cloudflare zone that is not a zone id", () => {
    expect(problemWith((c) => (c.dns = { provider: "cloudflare", domain: "cache.example.net", zone: "example.net" }))).toMatch(/dns\.zone: must be the Cloudflare zone id/);
  });

  it("route53 zone that does not contain the domain", () => {
    expect(problemWith((c) => (c.dns = { provider: "route53", domain: "cache.example.net", zone: "example.org" }))).toMatch(/dns\.zone: "example.org" does not contain/);
  });

  it("scale-out with zero api servers", () => {
    expect(problemWith((c) => (c.scaleOut = { enabled: true, apiServers: 0 }))).toMatch(/scaleOut\.apiServers: 0: scale-out needs at least 1 api server/);
  });

  it("scale-out without DNS to validate its certificate", () => {
    expect(problemWith((c) => {
      c.dns = { provider: "none" };
      c.scaleOut = { enabled: true, apiServers: 2 };
    })).toMatch(/dns\.provider: scale-out needs route53 or cloudflare/);
  });

  it("cdn: defaults, and each problem named by its field", () => {
    const input = validInput();
    input.cdn = { domain: "nix.example.net" };
    expect(parseDeployment(input).cdn).toEqual({ domain: "nix.example.net", prefix: "public", priceClass: "PriceClass_100" });
    expect(problemWith((c) => (c.cdn = { domain: "Nix.Example" }))).toMatch(/cdn\.domain: "Nix.Example" is not a lowercase host name/);
    expect(problemWith((c) => (c.cdn = { domain: "cache.example.net" }))).toMatch(/cdn\.domain: must differ from dns\.domain/);
    expect(problemWith((c) => (c.cdn = { domain: "nix.example.org" }))).toMatch(/cdn\.domain: "nix.example.org" is not in the Route53 zone "example.net"/);
    expect(problemWith((c) => (c.cdn = { domain: "nix.example.net", prefix: "/public/" }))).toMatch(/cdn\.prefix: "\/public\/" must be lowercase path segments/);
    expect(problemWith((c) => (c.cdn = { domain: "nix.example.net", priceClass: "PriceClass_1" as never }))).toMatch(/cdn\.priceClass: "PriceClass_1" must be/);
    expect(problemWith((c) => (c.cdn = { domain: "nix.example.net", ttl: 5 } as never))).toMatch(/cdn\.ttl: unknown key/);
    expect(
      problemWith((c) => {
        c.dns = { provider: "none" };
        c.cdn = { domain: "nix.example.net" };
      }),
    ).toMatch(/cdn: needs dns\.provider route53 or cloudflare/);
  });

  it("scale-out maximum below its size", () => {
    expect(problemWith((c) => (c.scaleOut = { enabled: true, apiServers: 3, maxApiServers: 2 }))).toMatch(/scaleOut\.maxApiServers: 2 must be a whole number from 3/);
  });

  it("unknown region format", () => {
    expect(problemWith((c) => (c.region = "eu-west"))).toMatch(/region: "eu-west" is not an AWS region name like eu-central-1/);
    expect(problemWith((c) => (c.region = "Frankfurt"))).toMatch(/region: "Frankfurt"/);
  });

  it("availability zones outside the region, or not two", () => {
    expect(problemWith((c) => (c.availabilityZones = ["eu-west-1a", "eu-west-2b"]))).toMatch(/availabilityZones\[1\]: "eu-west-2b" is not a zone of eu-west-1/);
    expect(problemWith((c) => (c.availabilityZones = ["eu-west-1a"]))).toMatch(/availabilityZones: must list exactly two/);
  });

  it("instance type of the other architecture", () => {
    expect(problemWith((c) => (c.host = { instanceType: "m7i.large", architecture: "arm64" }))).toMatch(/host\.instanceType: "m7i.large" is an x86_64 type but host\.architecture is arm64/);
    expect(problemWith((c) => (c.scaleOut = { enabled: true, instanceType: "c7i.large" }))).toMatch(/scaleOut\.instanceType: "c7i.large" is an x86_64 type/);
  });

  it("single host with a domain but no ACME contact", () => {
    expect(problemWith((c) => delete c.acmeEmail)).toMatch(/acmeEmail: a single host serving dns\.domain gets a Let's Encrypt certificate/);
  });

  it("unknown keys, top level and nested", () => {
    expect(problemWith((c) => Object.assign(c, { instanceType: "t4g.large" }))).toMatch(/instanceType: unknown key/);
    expect(problemWith((c) => (c.database = { size: 20 } as never))).toMatch(/database\.size: unknown key/);
  });

  it("larder source that is not pinned", () => {
    expect(problemWith((c) => (c.larderSource = { url: "http://example.com/x.tar.gz", sha256: "abc" }))).toMatch(/larderSource\.url: .*larderSource\.sha256: must be a Nix sha256/);
  });

  it("AMI id, binary cache, source pins, database TLS and alarm settings", () => {
    expect(problemWith((c) => (c.amiId = "ami-xyz"))).toMatch(/amiId: "ami-xyz" is not an AMI id/);
    expect(problemWith((c) => (c.binaryCache = { url: "http://c.example.net", publicKey: "nokey" }))).toMatch(/binaryCache\.url: must be an https:\/\/ .*binaryCache\.publicKey: must be the cache's public key/);
    expect(problemWith((c) => (c.larderSource = { flake: "github:me/larder" }))).toMatch(/larderSource\.flake: "github:me\/larder" must name one commit/);
    expect(problemWith((c) => (c.larderSource = { flake: "github:me/larder/main" }))).toMatch(/larderSource\.flake: .*must name one commit/);
    expect(problemWith((c) => (c.larderSource = { url: "https://x.example/a.tar.gz", sha256: "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", netrcSecretArn: "netrc" }))).toMatch(
      /larderSource\.netrcSecretArn: "netrc" is not a Secrets Manager secret ARN/,
    );
    expect(problemWith((c) => (c.larderSource = { flake: "github:a/b/0123456789abcdef0123456789abcdef01234567", url: "https://x" } as never))).toMatch(/larderSource\.url: unknown key/);
    expect(problemWith((c) => (c.database = { tls: "require" as never }))).toMatch(/database\.tls: "require" must be verify-full or no-verify/);
    expect(problemWith((c) => (c.host = { diskAlarmPercent: 100 }))).toMatch(/host\.diskAlarmPercent: 100 must be a whole number from 10 to 99/);
    expect(problemWith((c) => (c.alarmEmail = "ops"))).toMatch(/alarmEmail: "ops" is not an e-mail address/);
    expect(problemWith((c) => (c.nixosRelease = "26.04"))).toMatch(/nixosRelease: "26.04" must be a NixOS release/);
  });

  it("name, account id, NixOS release, backups and volume size", () => {
    expect(problemWith((c) => (c.name = "Prod_1"))).toMatch(/name: "Prod_1" must be 1-20 lowercase/);
    expect(problemWith((c) => (c.accountId = "1234"))).toMatch(/accountId: "1234" must be the 12-digit AWS account id/);
    expect(problemWith((c) => (c.nixosRelease = "latest"))).toMatch(/nixosRelease: "latest" must be a NixOS release/);
    expect(problemWith((c) => (c.database = { backupRetentionDays: 0 }))).toMatch(/database\.backupRetentionDays: 0 must be a whole number from 1 to 35/);
    expect(problemWith((c) => (c.host = { rootVolumeGiB: 8 }))).toMatch(/host\.rootVolumeGiB: 8/);
  });

  it("reports every problem at once, prefixed with the deployment", () => {
    const message = problemWith((c) => {
      c.region = "mars";
      c.vpcCidr = "nope";
    });
    expect(message).toMatch(/^deployment "test": /);
    expect(message).toMatch(/region: .*; .*vpcCidr: /);
  });
});

describe("architectureOf", () => {
  it.each([
    ["t4g.large", "arm64"], ["m7gd.xlarge", "arm64"], ["c7gn.large", "arm64"], ["a1.medium", "arm64"], ["g5g.xlarge", "arm64"],
    ["t3.large", "x86_64"], ["m7i-flex.large", "x86_64"], ["g5.xlarge", "x86_64"], ["m5dn.large", "x86_64"], ["c7a.large", "x86_64"],
  ])("%s is %s", (type, architecture) => {
    expect(architectureOf(type)).toBe(architecture);
  });

  it("does not guess for something that is not an instance type", () => {
    expect(architectureOf("large")).toBeUndefined();
  });
});
