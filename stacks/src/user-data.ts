// The NixOS configuration a host receives as EC2 user data. The NixOS AMI's amazon-init service saves
// it as /etc/nixos/configuration.nix and runs nixos-rebuild on every boot, so a new or replaced instance
// configures itself with no ssh and no manual step.
//
// It imports larder's EC2 host profile (nixos-modules/aws-host.nix, which brings the amazon image
// and services.larder) from a pinned source and sets services.larder.aws. Only non-secret values go
// in here (user data is readable with ec2:DescribeInstanceAttribute and lands in the Nix store):
// names, endpoints and the ARNs of the secrets, which the profile fetches from Secrets Manager at
// boot with the instance role.
//
// amazon-init runs a plain `nixos-rebuild switch` with the AMI's nix.conf. A binary cache, a netrc
// for a private source or a flake reference must be in nix.conf (or /etc/nix/netrc) before larder is
// evaluated and built, so such hosts boot in two passes: the first applies only the Nix settings and
// the netrc, then starts amazon-init again; the second, seeing them in place, imports larder. Every
// later boot goes straight to the second.
//
// No NixOS release appears here: system.stateVersion is the release the host was first installed
// with, recorded on the host, so changing nixosRelease never changes the user data or the instance.
//
// The text is also a Terraform string, where "${" starts an interpolation: the Nix below never uses
// Nix's own "${…}" (strings are joined with +), so every "${" in the output is a Terraform reference.
import type { DatabaseTls, LarderSource } from "./config.ts";

export type HostMode = "monolithic" | "api-server" | "garbage-collector";

/** acme: the host gets its own certificate; load-balancer: TLS ends at the ALB; none: plain HTTP. */
export type HostTls = "acme" | "load-balancer" | "none";

export interface HostNixosConfig {
  readonly mode: HostMode;
  /** The deployment's name: the Deployment dimension of the hosts' metrics. */
  readonly deployment: string;
  readonly larderSource: LarderSource;
  readonly binaryCache: { readonly url: string; readonly publicKey: string } | undefined;
  readonly region: string;
  readonly bucket: string;
  readonly databaseHost: string;
  readonly databasePort: number;
  readonly databaseName: string;
  readonly databaseTls: DatabaseTls;
  /** RDS-managed secret holding {"username", "password"}. */
  readonly databaseSecretArn: string;
  /** Secret holding the base64 HS256 token-signing key. */
  readonly tokenSecretArn: string;
  /** The name clients use (the bare Elastic IP when there is no domain). */
  readonly domain: string;
  readonly tls: HostTls;
  readonly acmeEmail: string | undefined;
  /** Where public caches' layouts are kept and read from (with a CDN), else larderd's defaults. */
  readonly bucketLayout?: { readonly prefix: string; readonly publicUrl: string } | undefined;
}

/** Each server's nginx (from the aws-host profile) listens here; the load balancer targets it. */
export const SERVER_HTTP_PORT = 80;

/** CloudWatch namespace of the hosts' own metrics (disk usage); the alarms read it. */
export const HOST_METRICS_NAMESPACE = "Larder";

/** Where a host records the NixOS release of its first install (its system.stateVersion). */
export const STATE_VERSION_FILE = "/var/lib/larder-aws/state-version";

function nixString(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function nixOptional(value: string | undefined): string {
  return value === undefined ? "null" : nixString(value);
}

function indent(text: string, spaces: number): string {
  return text.split("\n").map((line) => (line === "" ? line : " ".repeat(spaces) + line)).join("\n");
}

/** The expression that yields the aws-host module from the pinned source. */
function hostModule(source: LarderSource): string {
  if ("flake" in source) return `(builtins.getFlake ${nixString(source.flake)}).nixosModules.aws-host`;
  return `(builtins.fetchTarball {
    url = ${nixString(source.url)};
    sha256 = ${nixString(source.sha256)};
  }) + "/nixos-modules/aws-host.nix"`;
}

/** Nix settings and the netrc both passes share; `null` when the AMI's defaults do. */
function nixSettings(config: HostNixosConfig): string | undefined {
  const lines: string[] = [];
  if (config.binaryCache !== undefined) {
    lines.push(`nix.settings.extra-substituters = [ ${nixString(config.binaryCache.url)} ];`);
    lines.push(`nix.settings.extra-trusted-public-keys = [ ${nixString(config.binaryCache.publicKey)} ];`);
  }
  if ("flake" in config.larderSource) lines.push(`nix.settings.experimental-features = [ "nix-command" "flakes" ];`);
  const netrc = config.larderSource.netrcSecretArn;
  if (netrc !== undefined) {
    lines.push(`# Credentials for the private source or cache, from Secrets Manager; refreshed at every boot
# before amazon-init evaluates this file. Nix reads /etc/nix/netrc for every download.
systemd.services.larder-aws-netrc = {
  description = "Fetch /etc/nix/netrc for larder's private source from Secrets Manager";
  wantedBy = [ "multi-user.target" ];
  before = [ "amazon-init.service" ];
  wants = [ "network-online.target" ];
  after = [ "network-online.target" ];
  path = [ pkgs.awscli2 pkgs.coreutils ];
  serviceConfig = { Type = "oneshot"; RemainAfterExit = true; UMask = "0077"; };
  script = ''
    tries=0
    until aws secretsmanager get-secret-value --region ${nixString(config.region)} --secret-id ${nixString(netrc)} \\
            --query SecretString --output text > /etc/nix/netrc.new; do
      tries=$((tries + 1))
      if [ "$tries" -ge 12 ]; then echo "cannot read the netrc secret with the instance role" >&2; exit 1; fi
      sleep 5
    done
    mv -f /etc/nix/netrc.new /etc/nix/netrc
  '';
};`);
  }
  return lines.length === 0 ? undefined : lines.join("\n");
}

/** Whether the running system already has what the second pass needs (a Nix expression). */
function readyCondition(config: HostNixosConfig): string {
  const parts: string[] = [];
  if (config.binaryCache !== undefined) parts.push(`lib.hasInfix ${nixString(config.binaryCache.url)} nixConf`);
  if ("flake" in config.larderSource) parts.push(`lib.hasInfix "flakes" nixConf`);
  if (config.larderSource.netrcSecretArn !== undefined) parts.push(`builtins.pathExists /etc/nix/netrc`);
  return parts.join(" && ");
}

/** First pass only: once this configuration is active (nix.conf and the netrc in place), run
 * amazon-init again, which then imports larder. It waits for this pass's amazon-init to finish. */
const FIRST_PASS = `firstPass = { config, ... }: {
  imports = [ (modulesPath + "/virtualisation/amazon-image.nix") ];
  systemd.services.larder-aws-second-pass = {
    description = "Apply larder's configuration now that Nix is set up for it";
    wantedBy = [ "multi-user.target" ];
    after = [ "larder-aws-netrc.service" ];
    path = [ config.systemd.package ];
    script = ''
      while [ "$(systemctl show -P ActiveState amazon-init.service)" = activating ]; do sleep 2; done
      systemctl restart --no-block amazon-init.service
    '';
  };
};`;

function larderSettings(config: HostNixosConfig): string {
  return `services.larder.aws = {
  deployment = ${nixString(config.deployment)};
  mode = ${nixString(config.mode)};
  region = ${nixString(config.region)};
  bucket = ${nixString(config.bucket)};
  database = {
    host = ${nixString(config.databaseHost)};
    port = ${String(config.databasePort)};
    name = ${nixString(config.databaseName)};
    masterUserSecretArn = ${nixString(config.databaseSecretArn)};
    tls = ${nixString(config.databaseTls)};
  };
  tokenSecretArn = ${nixString(config.tokenSecretArn)};
  domain = ${nixString(config.domain)};
  tls = ${nixString(config.tls)};
  acmeEmail = ${nixOptional(config.acmeEmail)};
  metricsNamespace = ${nixString(HOST_METRICS_NAMESPACE)};${
    config.bucketLayout === undefined
      ? ""
      : `
  bucketLayout = { prefix = ${nixString(config.bucketLayout.prefix)}; publicUrl = ${nixString(config.bucketLayout.publicUrl)}; };`
  }
};`;
}

export function renderNixosConfig(config: HostNixosConfig): string {
  const settings = nixSettings(config);
  const twoPass = settings !== undefined;
  const stateFile = STATE_VERSION_FILE;
  const stateDir = stateFile.slice(0, stateFile.lastIndexOf("/"));
  const lets = [
    `larder = {
  imports = [ (${hostModule(config.larderSource)}) ];
${indent(larderSettings(config), 2)}
};`,
  ];
  if (twoPass) {
    lets.push(`nixConf = if builtins.pathExists /etc/nix/nix.conf then builtins.readFile /etc/nix/nix.conf else "";`);
    lets.push(`ready = ${readyCondition(config)};`);
    lets.push(FIRST_PASS);
  }
  const body = [
    twoPass ? "imports = [ (if ready then larder else firstPass) ];" : "imports = [ larder ];",
    settings,
    `# The release of this host's first install, kept across NixOS upgrades (docs/AWS.md).
system.stateVersion = if builtins.pathExists ${stateFile} then lib.fileContents ${stateFile} else lib.trivial.release;
system.activationScripts.larder-aws-state-version =
  "if [ ! -s ${stateFile} ]; then mkdir -p ${stateDir} && echo " + config.system.stateVersion + " > ${stateFile}; fi";`,
  ].filter((part): part is string => part !== undefined);

  return `# larder host (${config.mode}), written by larder's stacks (stacks/src/user-data.ts).
# amazon-init applies this on every boot. It holds no secret: the aws-host profile reads
# the database credentials and the token-signing key from Secrets Manager by ARN.
{ config, lib, pkgs, modulesPath, ... }:
let
${indent(lets.join("\n"), 2)}
in
{
${indent(body.join("\n\n"), 2)}
}
`;
}
