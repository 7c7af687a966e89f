// One deployment of larder: the composition of the constructs, wired from one checked Deployment.
import { TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
import { CloudflareProvider } from "@cdktf/provider-cloudflare/lib/provider/index.js";
import type { Deployment } from "./config.ts";
import { useRemoteState } from "./state.ts";
import { HOST_METRICS_NAMESPACE, renderNixosConfig } from "./user-data.ts";
import type { HostMode, HostTls } from "./user-data.ts";
import { Network } from "./constructs/network.ts";
import { CacheBucket } from "./constructs/cache-bucket.ts";
import { ServerSecrets } from "./constructs/server-secrets.ts";
import { DATABASE_NAME, DATABASE_PORT, Database } from "./constructs/database.ts";
import { HostIdentity } from "./constructs/host-identity.ts";
import { NixosImage } from "./constructs/nixos-image.ts";
import { Host } from "./constructs/host.ts";
import { Dns } from "./constructs/dns.ts";
import { ScaleOut } from "./constructs/scale-out.ts";
import { DiskAlarm } from "./constructs/disk-alarm.ts";
import { Cdn } from "./constructs/cdn.ts";

/** Output names the ops scripts read; renaming one breaks them. */
export const OUTPUT_NAMES = ["url", "public_ip", "instance_id", "vpc_id", "bucket", "database_endpoint", "region"] as const;

export function stackName(deployment: Deployment): string {
  return `larder-${deployment.name}`;
}

export class LarderStack extends TerraformStack {
  constructor(scope: Construct, id: string, deployment: Deployment) {
    super(scope, id);
    const name = stackName(deployment);
    const domain = deployment.dns.domain;

    const providerSettings = {
      // Credentials for the wrong account fail the plan instead of deploying there.
      allowedAccountIds: [deployment.accountId],
      defaultTags: [{ tags: { ...deployment.tags, project: "larder", deployment: deployment.name } }],
    };
    new AwsProvider(this, "aws", { region: deployment.region, ...providerSettings });
    // The API token comes from CLOUDFLARE_API_TOKEN at plan time, never from the synthesized files.
    if (deployment.dns.provider === "cloudflare") new CloudflareProvider(this, "cloudflare", {});
    useRemoteState(this, deployment);

    const network = new Network(this, "network", {
      name: deployment.name,
      region: deployment.region,
      cidr: deployment.vpcCidr,
      availabilityZones: deployment.availabilityZones,
    });
    const cache = new CacheBucket(this, "cache", {
      deploymentName: deployment.name,
      deletedObjectRetentionDays: deployment.storage.deletedObjectRetentionDays,
    });
    const secrets = new ServerSecrets(this, "secrets", { deploymentName: deployment.name });
    const database = new Database(this, "database", {
      deploymentName: deployment.name,
      vpcId: network.vpc.id,
      privateSubnetIds: network.privateSubnetIds,
      settings: deployment.database,
    });
    const identity = new HostIdentity(this, "identity", {
      deploymentName: deployment.name,
      vpcId: network.vpc.id,
      bucketArn: cache.bucket.arn,
      tokenSecretArn: secrets.tokenSecret.arn,
      databaseSecretArn: database.credentialsSecretArn,
      netrcSecretArn: deployment.larderSource.netrcSecretArn,
      metricsNamespace: HOST_METRICS_NAMESPACE,
      adminCidrs: deployment.adminCidrs,
    });
    database.allowFrom(identity.securityGroup.id);
    const image = new NixosImage(this, "image", {
      release: deployment.nixosRelease,
      architecture: deployment.host.architecture,
      amiId: deployment.amiId,
    });

    const dns = new Dns(this, "dns", { dns: deployment.dns });
    const cdn =
      deployment.cdn === undefined
        ? undefined
        : new Cdn(this, "cdn", {
            name,
            ...deployment.cdn,
            cache,
            dns,
            // CloudFront takes its certificate from us-east-1 only.
            usEast1: new AwsProvider(this, "aws-us-east-1", { alias: "us-east-1", region: "us-east-1", ...providerSettings }),
          });

    const nixos = (mode: HostMode, publicName: string, tls: HostTls): string =>
      renderNixosConfig({
        mode,
        deployment: deployment.name,
        larderSource: deployment.larderSource,
        binaryCache: deployment.binaryCache,
        region: deployment.region,
        bucket: cache.bucket.bucket,
        databaseHost: database.instance.address,
        databasePort: DATABASE_PORT,
        databaseName: DATABASE_NAME,
        databaseTls: deployment.database.tls,
        databaseSecretArn: database.credentialsSecretArn,
        tokenSecretArn: secrets.tokenSecret.arn,
        domain: publicName,
        tls,
        acmeEmail: tls === "acme" ? deployment.acmeEmail : undefined,
        bucketLayout: cdn === undefined || deployment.cdn === undefined ? undefined : { prefix: deployment.cdn.prefix, publicUrl: cdn.url },
      });
    const hostBase = {
      vpcId: network.vpc.id,
      subnetId: network.publicSubnetIds[0],
      imageId: image.id,
      imagePinned: image.pinned,
      instanceType: deployment.host.instanceType,
      rootVolumeGiB: deployment.host.rootVolumeGiB,
      instanceProfileName: identity.instanceProfile.name,
      securityGroupIds: [identity.securityGroup.id],
    };
    let host: Host;
    let url: string;
    if (!deployment.scaleOut.enabled) {
      host = new Host(this, "host", {
        ...hostBase,
        name,
        servesWeb: true,
        // Without a domain there is no certificate to get: plain HTTP on the Elastic IP.
        userData: (ip) => (domain === undefined ? nixos("monolithic", ip, "none") : nixos("monolithic", domain, "acme")),
      });
      dns.pointAt({ kind: "address", ip: host.address.publicIp });
      url = domain === undefined ? `http://${host.address.publicIp}` : `https://${domain}`;
    } else {
      if (domain === undefined) throw new Error(`${name}: scale-out needs dns.domain`);
      const scaleOut = new ScaleOut(this, "scale-out", {
        name,
        vpcId: network.vpc.id,
        publicSubnetIds: network.publicSubnetIds,
        domain,
        dns,
        imageId: image.id,
        imagePinned: image.pinned,
        rootDeviceName: image.rootDeviceName,
        instanceType: deployment.scaleOut.instanceType,
        rootVolumeGiB: deployment.host.rootVolumeGiB,
        instanceProfileArn: identity.instanceProfile.arn,
        hostSecurityGroupId: identity.securityGroup.id,
        userData: nixos("api-server", domain, "load-balancer"),
        apiServers: deployment.scaleOut.apiServers,
        maxApiServers: deployment.scaleOut.maxApiServers,
        bootGraceMinutes: deployment.scaleOut.bootGraceMinutes,
      });
      dns.pointAt({ kind: "load-balancer", dnsName: scaleOut.loadBalancer.dnsName, zoneId: scaleOut.loadBalancer.zoneId });
      // The collector serves no clients; it keeps the Elastic IP so ops scripts have one host to reach.
      host = new Host(this, "collector", {
        ...hostBase,
        name: `${name}-gc`,
        servesWeb: false,
        // It serves no clients, but its URLs must still name the public https endpoint.
        userData: () => nixos("garbage-collector", domain, "load-balancer"),
      });
      url = `https://${domain}`;
    }

    new DiskAlarm(this, "disk-alarm", {
      deploymentName: deployment.name,
      namespace: HOST_METRICS_NAMESPACE,
      modes: deployment.scaleOut.enabled ? ["api-server", "garbage-collector"] : ["monolithic"],
      thresholdPercent: deployment.host.diskAlarmPercent,
      email: deployment.alarmEmail,
    });

    const outputs: Record<(typeof OUTPUT_NAMES)[number], { value: string; description: string }> = {
      url: { value: url, description: "Base URL of the cache" },
      public_ip: { value: host.address.publicIp, description: "Elastic IP of the host (the garbage collector when scaled out)" },
      instance_id: { value: host.instance.id, description: "EC2 instance id of that host" },
      vpc_id: { value: network.vpc.id, description: "VPC id (for vpc-sg-cleanup)" },
      bucket: { value: cache.bucket.bucket, description: "Cache bucket name" },
      database_endpoint: { value: database.instance.endpoint, description: "RDS endpoint (host:port)" },
      region: { value: deployment.region, description: "AWS region" },
    };
    for (const [outputName, output] of Object.entries(outputs)) new TerraformOutput(this, outputName, output);
    // An ARN, not a value: where the operator puts the token-signing key once (docs/STACKS.md).
    if (cdn !== undefined) new TerraformOutput(this, "cdn_url", { value: cdn.url, description: "Base URL of the public caches' CDN: substituters = <cdn_url><cache>" });
    new TerraformOutput(this, "token_secret_arn", { value: secrets.tokenSecret.arn, description: "Secrets Manager secret for the token-signing key" });
  }
}
