// The NixOS configuration a host receives as EC2 user data. The NixOS AMI's amazon-init service saves
// it as /etc/nixos/configuration.nix and runs nixos-rebuild on every boot, so a new or replaced instance
// configures itself with no ssh and no manual step.
//
// Only non-secret values go in here (user data is readable by anyone with ec2:DescribeInstanceAttribute
// and lands in the Nix store): names, endpoints and the ARNs of the secrets, which the aws-host profile
// fetches from Secrets Manager at boot with the instance role.
//
// The text is also a Terraform string, where "${" starts an interpolation: the Nix below never uses
// Nix's own "${…}" (paths are joined with +), so every "${" in the output is a Terraform reference.

export type HostMode = "monolithic" | "api-server" | "garbage-collector";

export interface HostNixosConfig {
  readonly mode: HostMode;
  readonly nixosRelease: string;
  readonly larderSource: { readonly url: string; readonly sha256: string };
  /** Base URL clients use, with a trailing slash (larder's api-endpoint). */
  readonly apiEndpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly databaseHost: string;
  readonly databasePort: number;
  readonly databaseName: string;
  /** RDS-managed secret holding {"username", "password"}. */
  readonly databaseSecretArn: string;
  /** Secret holding the base64 HS256 token-signing key; the host creates its value on first boot if empty. */
  readonly tokenSecretArn: string;
  /** Set when this host terminates TLS itself (nginx + ACME); unset behind the load balancer or without a domain. */
  readonly tlsDomain: string | undefined;
  readonly acmeEmail: string | undefined;
}

/** The port larderd listens on: nginx proxies to it on a single host, the load balancer targets it when scaled out. */
export const LARDER_PORT = 8080;

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
{ lib, modulesPath, ... }:
let
  larder = builtins.fetchTarball {
    url = ${nixString(config.larderSource.url)};
    sha256 = ${nixString(config.larderSource.sha256)};
  };
in
{
  imports = [
    (modulesPath + "/virtualisation/amazon-image.nix")
    (larder + "/nixos-modules/larder.nix")
    (larder + "/nixos-modules/aws-host.nix")
  ];

  system.stateVersion = lib.mkDefault ${nixString(config.nixosRelease)};

  services.larder = {
    enable = true;
    mode = ${nixString(config.mode)};
    settings = {
      listen = ${nixString(`[::]:${LARDER_PORT}`)};
      api-endpoint = ${nixString(config.apiEndpoint)};
      storage = {
        type = "s3";
        region = ${nixString(config.region)};
        bucket = ${nixString(config.bucket)};
      };
    };
  };

  larder.awsHost = {
    enable = true;
    region = ${nixString(config.region)};
    database = {
      host = ${nixString(config.databaseHost)};
      port = ${String(config.databasePort)};
      name = ${nixString(config.databaseName)};
      credentialsSecretArn = ${nixString(config.databaseSecretArn)};
    };
    tokenSecretArn = ${nixString(config.tokenSecretArn)};
    tlsDomain = ${nixOptional(config.tlsDomain)};
    acmeEmail = ${nixOptional(config.acmeEmail)};
  };
}
`;
}
