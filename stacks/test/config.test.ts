import { describe, expect, it } from "vitest";
import { ConfigError, architectureOf, parseDeployment } from "../src/config.ts";
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
    expect(deployment.host).toEqual({ instanceType: "t4g.large", architecture: "arm64", rootVolumeGiB: 30 });
    expect(deployment.adminCidrs).toEqual([]);
    expect(deployment.database.deletionProtection).toBe(true);
    expect(deployment.database.maxAllocatedStorageGiB).toBe(100);
    expect(deployment.scaleOut).toEqual({ enabled: false });
    expect(Object.isFrozen(deployment)).toBe(true);
  });

  it("fills in scale-out defaults", () => {
    const input = validInput();
    input.scaleOut = { enabled: true };
    expect(parseDeployment(input as DeploymentInput).scaleOut).toEqual({ enabled: true, apiServers: 2, maxApiServers: 2, instanceType: "t4g.large" });
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
