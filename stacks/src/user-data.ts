// The NixOS configuration a host receives as EC2 user data. The NixOS AMI's amazon-init service saves
// it as /etc/nixos/configuration.nix and runs nixos-rebuild on every boot, so a new or replaced instance
// configures itself with no ssh and no manual step.
//
// It imports larder's EC2 host profile (nixos-modules/aws-host.nix, which brings the amazon image
// and services.larder) from a pinned tarball and sets services.larder.aws. Only non-secret values go
// in here (user data is readable with ec2:DescribeInstanceAttribute and lands in the Nix store):
// names, endpoints and the ARNs of the secrets, which the profile fetches from Secrets Manager at
// boot with the instance role.
//
// The text is also a Terraform string, where "${" starts an interpolation: the Nix below never uses
// Nix's own "${…}" (paths are joined with +), so every "${" in the output is a Terraform reference.

export type HostMode = "monolithic" | "api-server" | "garbage-collector";

/** acme: the host gets its own certificate; load-balancer: TLS ends at the ALB; none: plain HTTP. */
export type HostTls = "acme" | "load-balancer" | "none";

export interface HostNixosConfig {
  readonly mode: HostMode;
  readonly nixosRelease: string;
  readonly larderSource: { readonly url: string; readonly sha256: string };
  readonly region: string;
  readonly bucket: string;
  readonly databaseHost: string;
  readonly databasePort: number;
  readonly databaseName: string;
  /** RDS-managed secret holding {"username", "password"}. */
  readonly databaseSecretArn: string;
  /** Secret holding the base64 HS256 token-signing key. */
  readonly tokenSecretArn: string;
  /** The name clients use (the bare Elastic IP when there is no domain). */
  readonly domain: string;
  readonly tls: HostTls;
  readonly acmeEmail: string | undefined;
}

/** Each server's nginx (from the aws-host profile) listens here; the load balancer targets it. */
export const SERVER_HTTP_PORT = 80;

function nixString(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function nixOptional(value: string | undefined): string {
  return value === undefined ? "null" : nixString(value);
}

export function renderNixosConfig(config: HostNixosConfig): string {
  return `# larder host (${config.mode}), written by larder's stacks (stacks/src/user-data.ts).
# amazon-init applies this on every boot. It holds no secret: the aws-host profile reads
# the database credentials and the token-signing key from Secrets Manager by ARN.
{ lib, ... }:
let
  larder = builtins.fetchTarball {
    url = ${nixString(config.larderSource.url)};
    sha256 = ${nixString(config.larderSource.sha256)};
  };
in
{
  imports = [ (larder + "/nixos-modules/aws-host.nix") ];

  system.stateVersion = lib.mkDefault ${nixString(config.nixosRelease)};

  services.larder.aws = {
    mode = ${nixString(config.mode)};
    region = ${nixString(config.region)};
    bucket = ${nixString(config.bucket)};
    database = {
      host = ${nixString(config.databaseHost)};
      port = ${String(config.databasePort)};
      name = ${nixString(config.databaseName)};
      masterUserSecretArn = ${nixString(config.databaseSecretArn)};
    };
    tokenSecretArn = ${nixString(config.tokenSecretArn)};
    domain = ${nixString(config.domain)};
    tls = ${nixString(config.tls)};
    acmeEmail = ${nixOptional(config.acmeEmail)};
  };
}
`;
}
