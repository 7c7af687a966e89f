// An example of the organisation-sized layout: api servers in an auto-scaling group behind a load
// balancer (TLS by ACM), one garbage-collector instance, Route53 DNS, SSH for one admin network,
// and the public caches' bucket layouts behind CloudFront.
import type { DeploymentInput } from "../src/config.ts";

export default {
  name: "example-scale",
  accountId: "123456789012",
  region: "us-east-1",
  availabilityZones: ["us-east-1a", "us-east-1b"],
  vpcCidr: "10.50.0.0/16",
  larderSource: {
    url: "https://github.com/example/larder/archive/0123456789abcdef0123456789abcdef01234567.tar.gz",
    sha256: "0000000000000000000000000000000000000000000000000000",
  },
  nixosRelease: "26.05",
  host: { instanceType: "m7i.large", architecture: "x86_64", rootVolumeGiB: 40 },
  adminCidrs: ["203.0.113.0/24"],
  database: { instanceClass: "db.m7g.large", allocatedStorageGiB: 100, maxAllocatedStorageGiB: 1000, backupRetentionDays: 14, multiAz: true },
  dns: { provider: "route53", domain: "cache.example.org", zone: "example.org" },
  cdn: { domain: "nix.example.org" },
  scaleOut: { enabled: true, apiServers: 3, maxApiServers: 6, instanceType: "c7i.xlarge" },
  storage: { deletedObjectRetentionDays: 30 },
} satisfies DeploymentInput;
