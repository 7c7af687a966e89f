import { describe, expect, it } from "vitest";
import { Database } from "./database.ts";
import { parseDeployment } from "../config.ts";
import type { DeploymentInput } from "../config.ts";
import { all, one, synthScope, validInput } from "../../test/helpers.ts";

const settings = parseDeployment(validInput() as DeploymentInput).database;

describe("Database", () => {
  const tf = synthScope((scope) => {
    const database = new Database(scope, "database", { deploymentName: "t", vpcId: "vpc-1", privateSubnetIds: ["subnet-a", "subnet-b"], settings });
    database.allowFrom("sg-hosts");
  });

  it("is private, encrypted, backed up and protected from deletion", () => {
    expect(one(tf, "aws_db_instance")).toMatchObject({
      engine: "postgres",
      engine_version: "16",
      publicly_accessible: false,
      storage_encrypted: true,
      backup_retention_period: 7,
      deletion_protection: true,
      skip_final_snapshot: false,
    });
  });

  it("lets RDS manage the master password in Secrets Manager", () => {
    const db = one(tf, "aws_db_instance");
    expect(db["manage_master_user_password"]).toBe(true);
    expect(db["password"]).toBeUndefined();
  });

  it("grows its storage on its own up to the configured maximum", () => {
    expect(one(tf, "aws_db_instance")).toMatchObject({ storage_type: "gp3", allocated_storage: 20, max_allocated_storage: 100 });
  });

  it("lives in the private subnets", () => {
    expect(one(tf, "aws_db_subnet_group")["subnet_ids"]).toEqual(["subnet-a", "subnet-b"]);
  });

  it("admits PostgreSQL only from the hosts' security group", () => {
    const rules = all(tf, "aws_vpc_security_group_ingress_rule");
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ from_port: 5432, to_port: 5432, ip_protocol: "tcp", referenced_security_group_id: "sg-hosts" });
    expect(rules[0]?.["cidr_ipv4"]).toBeUndefined();
  });
});
