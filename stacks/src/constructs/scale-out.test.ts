import { describe, expect, it } from "vitest";
import { Dns } from "./dns.ts";
import { ScaleOut } from "./scale-out.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

describe("ScaleOut", () => {
  const tf = synthScope((scope) => {
    const dns = new Dns(scope, "dns", { dns: { provider: "route53", domain: "cache.example.net", zone: "example.net" } });
    new ScaleOut(scope, "scale-out", {
      name: "larder-t",
      vpcId: "vpc-1",
      publicSubnetIds: ["subnet-a", "subnet-b"],
      domain: "cache.example.net",
      dns,
      imageId: "${data.aws_ami_ids.x.ids[0]}",
      imagePinned: false,
      rootDeviceName: "/dev/xvda",
      instanceType: "c7g.large",
      rootVolumeGiB: 40,
      instanceProfileArn: "arn:profile",
      hostSecurityGroupId: "sg-hosts",
      userData: 'mode = "api-server";',
      apiServers: 3,
      maxApiServers: 5,
      bootGraceMinutes: 40,
    });
  });

  it("runs the api servers in an auto-scaling group of the configured size, checked by the load balancer", () => {
    expect(one(tf, "aws_autoscaling_group")).toMatchObject({ min_size: 3, desired_capacity: 3, max_size: 5, health_check_type: "ELB", vpc_zone_identifier: ["subnet-a", "subnet-b"] });
    expect(one(tf, "aws_autoscaling_group")["health_check_grace_period"]).toBe(2400);
  });

  it("health-checks larder's liveness endpoint (not readiness) through each server's nginx", () => {
    expect(one(tf, "aws_lb_target_group")).toMatchObject({ port: 80, protocol: "HTTP", health_check: { path: "/_api/v1/health/live", matcher: "200" } });
  });

  it("terminates TLS with a DNS-validated ACM certificate and redirects HTTP", () => {
    expect(one(tf, "aws_acm_certificate")).toMatchObject({ domain_name: "cache.example.net", validation_method: "DNS" });
    expect(String(one(tf, "aws_acm_certificate_validation")["depends_on"])).toMatch(/aws_route53_record\./);
    const listeners = all(tf, "aws_lb_listener");
    const https = listeners.find((l) => l["port"] === 443);
    expect(https).toMatchObject({ protocol: "HTTPS" });
    expect(String(https?.["certificate_arn"])).toMatch(/aws_acm_certificate_validation/);
    expect(listeners.find((l) => l["port"] === 80)?.["default_action"]).toMatchObject([{ type: "redirect" }]);
    expect(String(one(tf, "aws_route53_record")["name"])).toMatch(/resource_record_name/);
  });

  it("launches servers with IMDSv2, the image ignored, and the configuration base64-encoded", () => {
    const template = one(tf, "aws_launch_template");
    expect(template).toMatchObject({ image_id: "${data.aws_ami_ids.x.ids[0]}", instance_type: "c7g.large", metadata_options: { http_tokens: "required" }, lifecycle: { ignore_changes: ["image_id"] } });
    expect(template["user_data"]).toMatch(/^\$\{base64encode\(local\..*\)\}$/);
    expect(Object.values(tf.locals ?? {})).toEqual(['mode = "api-server";']);
  });

  it("lets only the load balancer reach the servers", () => {
    const rules = all(tf, "aws_vpc_security_group_ingress_rule");
    const toServers = rules.filter((r) => r["referenced_security_group_id"] !== undefined);
    expect(toServers).toHaveLength(1);
    expect(toServers[0]).toMatchObject({ from_port: 80, to_port: 80 });
    expect(rules.filter((r) => r["cidr_ipv4"] === "0.0.0.0/0").map((r) => r["from_port"]).sort()).toEqual([443, 80]);
    expect(String(toServers[0]?.["referenced_security_group_id"])).toMatch(/^\$\{aws_security_group\./);
    expect(toServers[0]?.["cidr_ipv4"]).toBeUndefined();
  });
});
