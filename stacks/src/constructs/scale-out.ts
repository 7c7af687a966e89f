// The organisation-sized layout: N stateless api-server instances in an auto-scaling group behind
// an application load balancer that terminates TLS (ACM). They share the RDS database and the bucket;
// the single garbage-collector instance is a Host (see larder-stack.ts).
import { Construct } from "constructs";
import { Fn, TerraformLocal, Token } from "cdktf";
import { validatedCertificate } from "./certificate.ts";
import { Lb } from "@cdktf/provider-aws/lib/lb/index.js";
import { LbTargetGroup } from "@cdktf/provider-aws/lib/lb-target-group/index.js";
import { LbListener } from "@cdktf/provider-aws/lib/lb-listener/index.js";
import { LaunchTemplate } from "@cdktf/provider-aws/lib/launch-template/index.js";
import { AutoscalingGroup } from "@cdktf/provider-aws/lib/autoscaling-group/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";
import type { Dns } from "./dns.ts";
import { REQUIRED_METADATA_OPTIONS } from "./host.ts";
import { SERVER_HTTP_PORT } from "../user-data.ts";
import { LIVENESS_PATH } from "../../../server/src/routes/health.ts";

/**
 * larderd's liveness endpoint (its own route constant): 200 while the process serves HTTP, whatever
 * the Host header, without touching the database. The readiness endpoint (database writable) is the
 * wrong check here: with health_check_type ELB, a brief RDS outage would make every server unhealthy
 * at once and the group would replace the whole fleet, which cannot fix a shared dependency.
 */
export const HEALTH_CHECK_PATH = LIVENESS_PATH;

export interface ScaleOutProps {
  readonly name: string;
  readonly vpcId: string;
  readonly publicSubnetIds: readonly string[];
  readonly domain: string;
  /** Where the certificate's validation records go. */
  readonly dns: Dns;
  readonly imageId: string;
  /** A literal id from the deployment: changing it rolls the fleet (an upgrade), so it is not ignored. */
  readonly imagePinned: boolean;
  readonly rootDeviceName: string;
  readonly instanceType: string;
  readonly rootVolumeGiB: number;
  readonly instanceProfileArn: string;
  readonly hostSecurityGroupId: string;
  /** The api-server's NixOS configuration (plain text; encoded here). */
  readonly userData: string;
  readonly apiServers: number;
  readonly maxApiServers: number;
  /** How long a new server may boot (nixos-rebuild, maybe a build of larder) before checks count. */
  readonly bootGraceMinutes: number;
}

export class ScaleOut extends Construct {
  readonly loadBalancer: Lb;
  readonly group: AutoscalingGroup;

  constructor(scope: Construct, id: string, props: ScaleOutProps) {
    super(scope, id);
    const name = props.name;

    const balancerFirewall = new SecurityGroup(this, "balancer-firewall", {
      namePrefix: `${name}-lb-`,
      description: "larder load balancer: HTTP and HTTPS from anywhere",
      vpcId: props.vpcId,
      revokeRulesOnDelete: true,
      lifecycle: { createBeforeDestroy: true },
      tags: { Name: `${name}-lb` },
    });
    for (const port of [80, 443]) {
      new VpcSecurityGroupIngressRule(this, `balancer-${port}`, {
        securityGroupId: balancerFirewall.id,
        description: `port ${port} from anywhere`,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        cidrIpv4: "0.0.0.0/0",
      });
    }
    const serverFirewall = new SecurityGroup(this, "server-firewall", {
      namePrefix: `${name}-api-`,
      description: "larder api servers: HTTP from the load balancer only",
      vpcId: props.vpcId,
      revokeRulesOnDelete: true,
      lifecycle: { createBeforeDestroy: true },
      tags: { Name: `${name}-api` },
    });
    new VpcSecurityGroupIngressRule(this, "servers-from-balancer", {
      securityGroupId: serverFirewall.id,
      description: "HTTP (nginx in front of larderd) from the load balancer",
      ipProtocol: "tcp",
      fromPort: SERVER_HTTP_PORT,
      toPort: SERVER_HTTP_PORT,
      referencedSecurityGroupId: balancerFirewall.id,
    });
    new VpcSecurityGroupEgressRule(this, "balancer-to-servers", {
      securityGroupId: balancerFirewall.id,
      description: "to the api servers",
      ipProtocol: "tcp",
      fromPort: SERVER_HTTP_PORT,
      toPort: SERVER_HTTP_PORT,
      referencedSecurityGroupId: serverFirewall.id,
    });

    const certificateArn = validatedCertificate(this, {
      domain: props.domain,
      dns: props.dns,
      ids: { certificate: "certificate", validated: "certificate-validated", record: "certificate-validation" },
    });

    this.loadBalancer = new Lb(this, "balancer", {
      namePrefix: "larder",
      loadBalancerType: "application",
      internal: false,
      securityGroups: [balancerFirewall.id],
      subnets: [...props.publicSubnetIds],
      dropInvalidHeaderFields: true,
      // Long enough for the server to finish a large push after its last byte arrives.
      idleTimeout: 600,
      tags: { Name: `${name}-lb` },
    });
    const targets = new LbTargetGroup(this, "servers", {
      namePrefix: "larder",
      vpcId: props.vpcId,
      port: SERVER_HTTP_PORT,
      protocol: "HTTP",
      targetType: "instance",
      deregistrationDelay: "30",
      healthCheck: {
        path: HEALTH_CHECK_PATH,
        matcher: "200",
        interval: 15,
        healthyThreshold: 2,
        unhealthyThreshold: 3,
      },
      lifecycle: { createBeforeDestroy: true },
    });
    new LbListener(this, "https", {
      loadBalancerArn: this.loadBalancer.arn,
      port: 443,
      protocol: "HTTPS",
      sslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
      certificateArn,
      defaultAction: [{ type: "forward", targetGroupArn: targets.arn }],
    });
    new LbListener(this, "http", {
      loadBalancerArn: this.loadBalancer.arn,
      port: 80,
      protocol: "HTTP",
      defaultAction: [{ type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } }],
    });

    // Launch templates want base64. cdktf cannot pass text with quotes and references straight into
    // base64encode(), but a local value keeps it an ordinary interpolated string.
    const userData = new TerraformLocal(this, "server-user-data", props.userData);
    const template = new LaunchTemplate(this, "server-template", {
      namePrefix: `${name}-api-`,
      imageId: props.imageId,
      instanceType: props.instanceType,
      iamInstanceProfile: { arn: props.instanceProfileArn },
      metadataOptions: REQUIRED_METADATA_OPTIONS,
      networkInterfaces: [
        {
          // No NAT gateway: servers reach the internet through their own public address.
          associatePublicIpAddress: "true",
          securityGroups: [props.hostSecurityGroupId, serverFirewall.id],
          deleteOnTermination: "true",
        },
      ],
      blockDeviceMappings: [
        {
          deviceName: props.rootDeviceName,
          ebs: { volumeType: "gp3", volumeSize: props.rootVolumeGiB, encrypted: "true", deleteOnTermination: "true" },
        },
      ],
      userData: Fn.base64encode(userData.asString),
      updateDefaultVersion: true,
      tagSpecifications: [{ resourceType: "instance", tags: { Name: `${name}-api` } }],
      // Like the single host: a newly published NixOS image must not roll the fleet by itself.
      ...(props.imagePinned ? {} : { lifecycle: { ignoreChanges: ["image_id"] } }),
    });
    this.group = new AutoscalingGroup(this, "servers-group", {
      namePrefix: `${name}-api-`,
      minSize: props.apiServers,
      desiredCapacity: props.apiServers,
      maxSize: props.maxApiServers,
      vpcZoneIdentifier: [...props.publicSubnetIds],
      targetGroupArns: [targets.arn],
      healthCheckType: "ELB",
      // First boot runs nixos-rebuild, which takes minutes; don't kill servers still configuring.
      healthCheckGracePeriod: props.bootGraceMinutes * 60,
      launchTemplate: { id: template.id, version: Token.asString(template.latestVersion) },
      // A new configuration (a new template version) replaces servers a few at a time.
      instanceRefresh: { strategy: "Rolling", preferences: { minHealthyPercentage: 50 } },
    });
  }
}
