// Shared by the stack tests: a valid deployment to vary, and synthesis into parsed JSON.
import type { Construct } from "constructs";
import { Testing } from "cdktf";
import type { DeploymentInput } from "../src/config.ts";
import type { TerraformJson } from "../src/policy.ts";

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };

/** A complete, valid deployment; each call returns a fresh object a test may change. */
export function validInput(): Mutable<DeploymentInput> {
  return {
    name: "test",
    accountId: "111122223333",
    region: "eu-west-1",
    availabilityZones: ["eu-west-1a", "eu-west-1b"],
    vpcCidr: "10.20.0.0/16",
    larderSource: {
      url: "https://github.com/example/larder/archive/0123456789abcdef0123456789abcdef01234567.tar.gz",
      sha256: "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    },
    nixosRelease: "26.05",
    dns: { provider: "route53", domain: "cache.example.net", zone: "example.net" },
    acmeEmail: "ops@example.net",
  } as Mutable<DeploymentInput>;
}

/** Synthesizes constructs made by `build` in a throwaway stack and returns the Terraform JSON. */
export function synthScope(build: (scope: Construct) => void): TerraformJson {
  return JSON.parse(Testing.synthScope(build)) as TerraformJson;
}

/** The bodies of every resource (or data source) of one type. */
export function all(tf: TerraformJson, type: string, kind: "resource" | "data" = "resource"): Record<string, unknown>[] {
  return Object.values(tf[kind]?.[type] ?? {});
}

/** The single resource of a type; fails the test when there are none or several. */
export function one(tf: TerraformJson, type: string, kind: "resource" | "data" = "resource"): Record<string, unknown> {
  const found = all(tf, type, kind);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0] as Record<string, unknown>;
}
