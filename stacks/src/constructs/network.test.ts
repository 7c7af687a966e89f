import { describe, expect, it } from "vitest";
import { Network } from "./network.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

describe("Network", () => {
  const tf = synthScope((scope) => {
    new Network(scope, "network", { name: "t", region: "eu-west-1", cidr: "10.20.0.0/16", availabilityZones: ["eu-west-1a", "eu-west-1b"] });
  });

  it("creates the VPC with DNS host names", () => {
    expect(one(tf, "aws_vpc")).toMatchObject({ cidr_block: "10.20.0.0/16", enable_dns_hostnames: true, enable_dns_support: true });
  });

  it("splits it into public and private subnets in both zones", () => {
    const subnets = all(tf, "aws_subnet").map((s) => `${String(s["cidr_block"])} ${String(s["availability_zone"])}`).sort();
    expect(subnets).toEqual(["10.20.0.0/18 eu-west-1a", "10.20.128.0/18 eu-west-1a", "10.20.192.0/18 eu-west-1b", "10.20.64.0/18 eu-west-1b"]);
  });

  it("routes only the public subnets to the internet gateway, with no NAT gateway", () => {
    const route = one(tf, "aws_route");
    expect(route["destination_cidr_block"]).toBe("0.0.0.0/0");
    expect(String(route["gateway_id"])).toMatch(/^\$\{aws_internet_gateway\./);
    expect(all(tf, "aws_route_table")).toHaveLength(2);
    expect(all(tf, "aws_route_table_association")).toHaveLength(4);
    expect(all(tf, "aws_nat_gateway")).toHaveLength(0);
  });

  it("adds an S3 gateway endpoint on both route tables", () => {
    const endpoint = one(tf, "aws_vpc_endpoint");
    expect(endpoint).toMatchObject({ service_name: "com.amazonaws.eu-west-1.s3", vpc_endpoint_type: "Gateway" });
    expect(endpoint["route_table_ids"]).toHaveLength(2);
  });
});
