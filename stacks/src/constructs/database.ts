// PostgreSQL on RDS, so the cache's metadata (and its signing keys) outlives any instance: chutney lost
// both when its instance was re-created, and stopped when Postgres filled the instance's root disk.
// Storage autoscaling, automated backups and deletion protection answer those; RDS keeps the master
// password in Secrets Manager itself, so it never passes through Terraform.
import { Construct } from "constructs";
import { DbInstance } from "@cdktf/provider-aws/lib/db-instance/index.js";
import { DbSubnetGroup } from "@cdktf/provider-aws/lib/db-subnet-group/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import type { Deployment } from "../config.ts";

export interface DatabaseProps {
  readonly deploymentName: string;
  readonly vpcId: string;
  readonly privateSubnetIds: readonly string[];
  readonly settings: Deployment["database"];
}

export const DATABASE_NAME = "larder";
export const DATABASE_PORT = 5432;

export class Database extends Construct {
  readonly instance: DbInstance;
  private readonly firewall: SecurityGroup;
  private clients = 0;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const name = `larder-${props.deploymentName}`;
    const subnets = new DbSubnetGroup(this, "subnets", {
      namePrefix: `${name}-`,
      subnetIds: [...props.privateSubnetIds],
    });
    this.firewall = new SecurityGroup(this, "firewall", {
      namePrefix: `${name}-database-`,
      description: "larder database: PostgreSQL from the larder hosts only",
      vpcId: props.vpcId,
      revokeRulesOnDelete: true,
      lifecycle: { createBeforeDestroy: true },
      tags: { Name: `${name}-database` },
    });
    const s = props.settings;
    this.instance = new DbInstance(this, "postgres", {
      identifierPrefix: `${name}-`,
      engine: "postgres",
      engineVersion: s.engineVersion,
      autoMinorVersionUpgrade: true,
      instanceClass: s.instanceClass,
      dbName: DATABASE_NAME,
      port: DATABASE_PORT,
      username: "larder",
      manageMasterUserPassword: true,
      storageType: "gp3",
      allocatedStorage: s.allocatedStorageGiB,
      maxAllocatedStorage: s.maxAllocatedStorageGiB,
      storageEncrypted: true,
      multiAz: s.multiAz,
      dbSubnetGroupName: subnets.name,
      vpcSecurityGroupIds: [this.firewall.id],
      publiclyAccessible: false,
      backupRetentionPeriod: s.backupRetentionDays,
      copyTagsToSnapshot: true,
      deletionProtection: s.deletionProtection,
      skipFinalSnapshot: false,
      finalSnapshotIdentifier: `${name}-final`,
      applyImmediately: false,
    });
  }

  /** Admits PostgreSQL connections from members of a security group (never from an address range). */
  allowFrom(securityGroupId: string): void {
    new VpcSecurityGroupIngressRule(this, `clients-${this.clients++}`, {
      securityGroupId: this.firewall.id,
      description: "PostgreSQL from larder hosts",
      ipProtocol: "tcp",
      fromPort: DATABASE_PORT,
      toPort: DATABASE_PORT,
      referencedSecurityGroupId: securityGroupId,
    });
  }

  /** The RDS-managed secret with the master user's {"username", "password"}. */
  get credentialsSecretArn(): string {
    return this.instance.masterUserSecret.get(0).secretArn;
  }
}
