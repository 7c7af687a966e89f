// The VPC: two availability zones, a public subnet in each for the hosts and the load balancer, a
// private subnet in each for the database. There is no NAT gateway (≈ $35/month each): hosts sit in
// the public subnets behind their security groups, and S3 traffic takes the free gateway endpoint.
import { Construct } from "constructs";
import { Vpc } from "@cdktf/provider-aws/lib/vpc/index.js";
import { Subnet } from "@cdktf/provider-aws/lib/subnet/index.js";
import { InternetGateway } from "@cdktf/provider-aws/lib/internet-gateway/index.js";
import { RouteTable } from "@cdktf/provider-aws/lib/route-table/index.js";
import { Route } from "@cdktf/provider-aws/lib/route/index.js";
import { RouteTableAssociation } from "@cdktf/provider-aws/lib/route-table-association/index.js";
import { VpcEndpoint } from "@cdktf/provider-aws/lib/vpc-endpoint/index.js";
import { parseIpv4Cidr, subnetOf } from "../cidr.ts";

export interface NetworkProps {
  readonly name: string;
  readonly region: string;
  readonly cidr: string;
  readonly availabilityZones: readonly [string, string];
}

export class Network extends Construct {
  readonly vpc: Vpc;
  readonly publicSubnetIds: readonly [string, string];
  readonly privateSubnetIds: readonly [string, string];

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const cidr = parseIpv4Cidr(props.cidr);
    if (typeof cidr === "string") throw new Error(`Network ${id}: ${cidr}`);

    this.vpc = new Vpc(this, "vpc", {
      cidrBlock: props.cidr,
      enableDnsSupport: true,
      // RDS endpoints and the S3 endpoint resolve through VPC DNS host names.
      enableDnsHostnames: true,
      tags: { Name: `larder-${props.name}` },
    });
    const gateway = new InternetGateway(this, "internet-gateway", { vpcId: this.vpc.id });

    const publicRoutes = new RouteTable(this, "public-routes", { vpcId: this.vpc.id, tags: { Name: `larder-${props.name}-public` } });
    new Route(this, "public-default-route", {
      routeTableId: publicRoutes.id,
      destinationCidrBlock: "0.0.0.0/0",
      gatewayId: gateway.id,
    });
    const privateRoutes = new RouteTable(this, "private-routes", { vpcId: this.vpc.id, tags: { Name: `larder-${props.name}-private` } });

    // Quarters of the VPC: public a, public b, private a, private b.
    const subnet = (kind: "public" | "private", index: 0 | 1, routeTableId: string): string => {
      const zone = props.availabilityZones[index];
      const created = new Subnet(this, `${kind}-${index}`, {
        vpcId: this.vpc.id,
        availabilityZone: zone,
        cidrBlock: subnetOf(cidr, 2, (kind === "public" ? 0 : 2) + index),
        tags: { Name: `larder-${props.name}-${kind}-${zone}` },
      });
      new RouteTableAssociation(this, `${kind}-${index}-routes`, { subnetId: created.id, routeTableId });
      return created.id;
    };
    this.publicSubnetIds = [subnet("public", 0, publicRoutes.id), subnet("public", 1, publicRoutes.id)];
    this.privateSubnetIds = [subnet("private", 0, privateRoutes.id), subnet("private", 1, privateRoutes.id)];

    new VpcEndpoint(this, "s3-endpoint", {
      vpcId: this.vpc.id,
      serviceName: `com.amazonaws.${props.region}.s3`,
      vpcEndpointType: "Gateway",
      routeTableIds: [publicRoutes.id, privateRoutes.id],
      tags: { Name: `larder-${props.name}-s3` },
    });
  }
}
