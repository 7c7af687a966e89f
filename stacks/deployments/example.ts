// An example deployment: one NixOS host with larder, RDS PostgreSQL and an S3 bucket, named through
// Cloudflare. Copy this file, change the values, and `npm run synth` picks it up.
import type { DeploymentInput } from "../src/config.ts";

export default {
  name: "example",
  accountId: "123456789012",
  region: "eu-central-1",
  availabilityZones: ["eu-central-1a", "eu-central-1b"],
  vpcCidr: "10.40.0.0/16",
  // A tarball of one larder revision; get the hash with `nix-prefetch-url --unpack URL`.
  larderSource: {
    url: "https://github.com/example/larder/archive/0123456789abcdef0123456789abcdef01234567.tar.gz",
    sha256: "0000000000000000000000000000000000000000000000000000",
  },
  // The official image of this release; or pin one with amiId: "ami-…" (docs/AWS.md, "Choosing the NixOS image").
  nixosRelease: "26.05",
  // Optional: a cache holding larder's closure, so new hosts substitute it instead of building it.
  // binaryCache: { url: "https://cache.example.com/main", publicKey: "main:…" },
  host: { instanceType: "t4g.large", architecture: "arm64", rootVolumeGiB: 30 },
  // No SSH from anywhere: reach the host with `aws ssm start-session --target <instance_id>`.
  adminCidrs: [],
  database: { instanceClass: "db.t4g.small", allocatedStorageGiB: 20, maxAllocatedStorageGiB: 100, backupRetentionDays: 7 },
  dns: { provider: "cloudflare", domain: "cache.example.com", zone: "0123456789abcdef0123456789abcdef" },
  acmeEmail: "ops@example.com",
  tags: { owner: "platform-team" },
} satisfies DeploymentInput;
