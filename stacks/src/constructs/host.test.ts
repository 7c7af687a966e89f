import { describe, expect, it } from "vitest";
import { Host } from "./host.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

function build(servesWeb: boolean, imagePinned = false) {
  return synthScope((scope) => {
    new Host(scope, "host", {
      name: "larder-t",
      vpcId: "vpc-1",
      subnetId: "subnet-a",
      imageId: imagePinned ? "ami-0123456789abcdef0" : "${data.aws_ami_ids.x.ids[0]}",
      imagePinned,
      instanceType: "t4g.large",
      rootVolumeGiB: 33,
      instanceProfileName: "profile",
      securityGroupIds: ["sg-hosts"],
      servesWeb,
      userData: (ip) => `address = ${ip}`,
    });
  });
}

describe("Host", () => {
  const tf = build(true);
  const instance = one(tf, "aws_instance");

  it("requires IMDSv2", () => {
    expect(instance["metadata_options"]).toMatchObject({ http_tokens: "required", http_endpoint: "enabled" });
  });

  it("ignores AMI changes so a newly published image never replaces it", () => {
    expect(instance["lifecycle"]).toEqual({ ignore_changes: ["ami"] });
  });

  it("follows a pinned AMI id: changing it is an upgrade that replaces the host", () => {
    const pinned = one(build(true, true), "aws_instance");
    expect(pinned["ami"]).toBe("ami-0123456789abcdef0");
    expect(pinned["lifecycle"]).toBeUndefined();
  });

  it("has an encrypted gp3 root volume of the configured size", () => {
    expect(instance["root_block_device"]).toMatchObject({ volume_type: "gp3", volume_size: 33, encrypted: true });
  });

  it("keeps its Elastic IP in a separate association", () => {
    const eip = one(tf, "aws_eip");
    expect(eip["instance"]).toBeUndefined();
    const association = one(tf, "aws_eip_association");
    expect(String(association["allocation_id"])).toMatch(/^\$\{aws_eip\..*\.allocation_id\}$/);
    expect(String(association["instance_id"])).toMatch(/^\$\{aws_instance\..*\.id\}$/);
  });

  it("hands the Elastic IP to its user data", () => {
    expect(String(instance["user_data"])).toMatch(/^address = \$\{aws_eip\..*\.public_ip\}$/);
  });

  it("is protected from console termination but still destroyable by Terraform", () => {
    expect(instance).toMatchObject({ disable_api_termination: true, force_destroy: true });
  });

  it("opens 80 and 443 when it serves clients, and nothing else", () => {
    const ports = all(tf, "aws_vpc_security_group_ingress_rule").map((r) => [r["from_port"], r["cidr_ipv4"]]).sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(ports).toEqual([[80, "0.0.0.0/0"], [443, "0.0.0.0/0"]]);
    expect(instance["vpc_security_group_ids"]).toHaveLength(2);
  });

  it("opens no port when it serves no clients (the garbage collector)", () => {
    const collector = build(false);
    expect(all(collector, "aws_vpc_security_group_ingress_rule")).toHaveLength(0);
    expect(one(collector, "aws_instance")["vpc_security_group_ids"]).toEqual(["sg-hosts"]);
  });
});
