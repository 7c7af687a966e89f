// One NixOS instance with a stable public address: the single host of a small deployment, or the
// garbage collector of a scaled-out one. It holds no state (that lives in RDS, S3 and Secrets
// Manager), so replacing it loses nothing; the Elastic IP is associated separately so the address
// survives the replacement too.
import { Construct } from "constructs";
import { Instance } from "@cdktf/provider-aws/lib/instance/index.js";
import { Eip } from "@cdktf/provider-aws/lib/eip/index.js";
import { EipAssociation } from "@cdktf/provider-aws/lib/eip-association/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";

export interface HostProps {
  readonly name: string;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly imageId: string;
  /** A literal id from the deployment: changing it replaces the instance (an upgrade), so it is not ignored. */
  readonly imagePinned: boolean;
  readonly instanceType: string;
  readonly rootVolumeGiB: number;
  readonly instanceProfileName: string;
  readonly securityGroupIds: readonly string[];
  /** Open 80 and 443 to everyone (a single host serving clients itself). */
  readonly servesWeb: boolean;
  /** The NixOS configuration, given the host's public address. */
  readonly userData: (publicIp: string) => string;
}

/** IMDSv2 only: a stolen-request SSRF cannot read the role's credentials without a session token. */
export const REQUIRED_METADATA_OPTIONS = {
  httpEndpoint: "enabled",
  httpTokens: "required",
  httpPutResponseHopLimit: 1,
} as const;

export class Host extends Construct {
  readonly instance: Instance;
  readonly address: Eip;

  constructor(scope: Construct, id: string, props: HostProps) {
    super(scope, id);
    this.address = new Eip(this, "address", { domain: "vpc", tags: { Name: props.name } });

    const groups = [...props.securityGroupIds];
    if (props.servesWeb) {
      const web = new SecurityGroup(this, "web", {
        namePrefix: `${props.name}-web-`,
        description: "larder: HTTP and HTTPS from anywhere",
        vpcId: props.vpcId,
        revokeRulesOnDelete: true,
        lifecycle: { createBeforeDestroy: true },
        tags: { Name: `${props.name}-web` },
      });
      // IPv4 only: the VPC has no IPv6 range.
      for (const port of [80, 443]) {
        new VpcSecurityGroupIngressRule(this, `web-${port}`, {
          securityGroupId: web.id,
          description: `port ${port} from anywhere`,
          ipProtocol: "tcp",
          fromPort: port,
          toPort: port,
          cidrIpv4: "0.0.0.0/0",
        });
      }
      groups.push(web.id);
    }

    this.instance = new Instance(this, "instance", {
      ami: props.imageId,
      instanceType: props.instanceType,
      subnetId: props.subnetId,
      vpcSecurityGroupIds: groups,
      iamInstanceProfile: props.instanceProfileName,
      // Outbound access before the Elastic IP is attached (first boot fetches NixOS closures).
      associatePublicIpAddress: true,
      metadataOptions: REQUIRED_METADATA_OPTIONS,
      rootBlockDevice: {
        volumeType: "gp3",
        volumeSize: props.rootVolumeGiB,
        encrypted: true,
        deleteOnTermination: true,
      },
      userData: props.userData(this.address.publicIp),
      // A changed configuration is applied by a reboot (amazon-init runs at every boot), not a new instance.
      userDataReplaceOnChange: false,
      // Blocks termination from the console or CLI by mistake; provider v6 then needs force_destroy
      // for `terraform destroy` to work at all.
      disableApiTermination: true,
      forceDestroy: true,
      // A looked-up image moves weekly; it must never replace a running host by itself.
      ...(props.imagePinned ? {} : { lifecycle: { ignoreChanges: ["ami"] } }),
      tags: { Name: props.name },
    });
    new EipAssociation(this, "address-association", {
      allocationId: this.address.allocationId,
      instanceId: this.instance.id,
    });
  }
}
