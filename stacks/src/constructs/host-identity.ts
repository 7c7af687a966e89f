// What every larder instance shares, whatever its mode: an instance role that can reach exactly the
// cache bucket and the deployment's two secrets, and a base security group that the database admits
// and that opens SSH to the admin CIDRs only (none by default; SSM Session Manager needs no port).
import { Construct } from "constructs";
import { IamRole } from "@cdktf/provider-aws/lib/iam-role/index.js";
import { IamRolePolicy } from "@cdktf/provider-aws/lib/iam-role-policy/index.js";
import { IamInstanceProfile } from "@cdktf/provider-aws/lib/iam-instance-profile/index.js";
import { DataAwsIamPolicyDocument } from "@cdktf/provider-aws/lib/data-aws-iam-policy-document/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";

export interface HostIdentityProps {
  readonly deploymentName: string;
  readonly vpcId: string;
  readonly bucketArn: string;
  readonly tokenSecretArn: string;
  readonly databaseSecretArn: string;
  /** A netrc for a private larder source or binary cache (larderSource.netrcSecretArn). */
  readonly netrcSecretArn: string | undefined;
  /** Namespace the hosts publish their own metrics (disk usage) to; they may write no other. */
  readonly metricsNamespace: string;
  readonly adminCidrs: readonly string[];
}

/**
 * Session Manager shells and Run Command, and nothing else of SSM: AmazonSSMManagedInstanceCore would
 * also let every host read every SSM parameter and document in the account. These actions have no
 * resource types (ssmmessages, ec2messages) or act on the calling instance only (UpdateInstanceInformation).
 */
export const SESSION_MANAGER_STATEMENTS = [
  {
    sid: "SessionManagerAgent",
    actions: ["ssm:UpdateInstanceInformation"],
    resources: ["*"],
  },
  {
    sid: "SessionManagerChannels",
    actions: ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
    resources: ["*"],
  },
  {
    sid: "RunCommandMessages",
    actions: ["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"],
    resources: ["*"],
  },
];

export class HostIdentity extends Construct {
  readonly role: IamRole;
  readonly instanceProfile: IamInstanceProfile;
  readonly securityGroup: SecurityGroup;

  constructor(scope: Construct, id: string, props: HostIdentityProps) {
    super(scope, id);
    const name = `larder-${props.deploymentName}`;
    const assume = new DataAwsIamPolicyDocument(this, "assume", {
      statement: [{ actions: ["sts:AssumeRole"], principals: [{ type: "Service", identifiers: ["ec2.amazonaws.com"] }] }],
    });
    this.role = new IamRole(this, "role", { namePrefix: `${name}-host-`, assumeRolePolicy: assume.json });

    const access = new DataAwsIamPolicyDocument(this, "access", {
      statement: [
        {
          sid: "ListCacheBucket",
          actions: ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
          resources: [props.bucketArn],
        },
        {
          sid: "CacheObjects",
          actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
          resources: [`${props.bucketArn}/*`],
        },
        {
          sid: "ReadServerSecrets",
          actions: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
          resources: [props.tokenSecretArn, props.databaseSecretArn, ...(props.netrcSecretArn === undefined ? [] : [props.netrcSecretArn])],
        },
        {
          sid: "PublishHostMetrics",
          actions: ["cloudwatch:PutMetricData"],
          // PutMetricData has no resource type; the namespace condition is its only scope.
          resources: ["*"],
          condition: [{ test: "StringEquals", variable: "cloudwatch:namespace", values: [props.metricsNamespace] }],
        },
        ...SESSION_MANAGER_STATEMENTS,
      ],
    });
    new IamRolePolicy(this, "access-policy", { role: this.role.id, name: "larder-host-access", policy: access.json });
    this.instanceProfile = new IamInstanceProfile(this, "profile", { namePrefix: `${name}-host-`, role: this.role.name });

    this.securityGroup = new SecurityGroup(this, "hosts", {
      namePrefix: `${name}-hosts-`,
      description: "larder hosts: admin SSH; the database admits this group",
      vpcId: props.vpcId,
      // Rules referencing other groups otherwise keep a destroy retrying until it times out.
      revokeRulesOnDelete: true,
      lifecycle: { createBeforeDestroy: true },
      tags: { Name: `${name}-hosts` },
    });
    props.adminCidrs.forEach((cidr, index) => {
      new VpcSecurityGroupIngressRule(this, `ssh-${index}`, {
        securityGroupId: this.securityGroup.id,
        description: "SSH from an admin CIDR",
        ipProtocol: "tcp",
        fromPort: 22,
        toPort: 22,
        ...(cidr.includes(":") ? { cidrIpv6: cidr } : { cidrIpv4: cidr }),
      });
    });
    // Hosts fetch NixOS closures and larder's source, and call AWS APIs: all outbound over the internet gateway.
    new VpcSecurityGroupEgressRule(this, "egress", {
      securityGroupId: this.securityGroup.id,
      description: "all outbound",
      ipProtocol: "-1",
      cidrIpv4: "0.0.0.0/0",
    });
  }
}
