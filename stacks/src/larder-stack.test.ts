import { describe, expect, it } from "vitest";
import { Testing } from "cdktf";
import { LarderStack, OUTPUT_NAMES } from "./larder-stack.ts";
import { parseDeployment } from "./config.ts";
import type { DeploymentInput } from "./config.ts";
import type { TerraformJson } from "./policy.ts";
import { all, one, validInput } from "../test/helpers.ts";

function synth(change: (input: ReturnType<typeof validInput>) => void = () => {}): TerraformJson {
  const input = validInput();
  change(input);
  const stack = new LarderStack(Testing.app(), "larder-test", parseDeployment(input as DeploymentInput));
  return JSON.parse(Testing.synth(stack)) as TerraformJson;
}

function userData(tf: TerraformJson, type: "aws_instance"): string {
  return String(one(tf, type)["user_data"]);
}

describe("LarderStack, single host", () => {
  const tf = synth();

  it("exposes exactly the outputs the ops scripts read", () => {
    expect(Object.keys(tf.output ?? {}).sort()).toEqual([...OUTPUT_NAMES, "token_secret_arn"].sort());
    expect(String(tf.output?.["token_secret_arn"]?.["value"])).toMatch(/^\$\{aws_secretsmanager_secret\..*\.arn\}$/);
    expect(tf.output?.["url"]?.["value"]).toBe("https://cache.example.net");
    expect(tf.output?.["region"]?.["value"]).toBe("eu-west-1");
    expect(String(tf.output?.["public_ip"]?.["value"])).toMatch(/^\$\{aws_eip\./);
  });

  it("runs larder in monolithic mode, terminating TLS for the domain itself", () => {
    const text = userData(tf, "aws_instance");
    expect(text).toContain('mode = "monolithic";');
    expect(text).toContain('domain = "cache.example.net";');
    expect(text).toContain('tls = "acme";');
    expect(text).toContain('acmeEmail = "ops@example.net";');
  });

  it("tags everything and refuses other accounts", () => {
    const provider = (tf as { provider?: { aws?: Record<string, unknown>[] } }).provider?.aws?.[0];
    expect(provider).toMatchObject({ allowed_account_ids: ["111122223333"], default_tags: [{ tags: { project: "larder", deployment: "test" } }] });
  });

  it("lets the hosts' group, and only it, reach the database", () => {
    const postgres = all(tf, "aws_vpc_security_group_ingress_rule").filter((r) => r["from_port"] === 5432);
    expect(postgres).toHaveLength(1);
    expect(String(postgres[0]?.["referenced_security_group_id"])).toMatch(/aws_security_group\.identity_hosts/);
  });

  it("uses Cloudflare's provider only when the DNS is there", () => {
    expect((tf as { provider?: Record<string, unknown> }).provider?.["cloudflare"]).toBeUndefined();
    const cloudflare = synth((c) => (c.dns = { provider: "cloudflare", domain: "cache.example.net", zone: "0123456789abcdef0123456789abcdef" }));
    expect((cloudflare as { provider?: Record<string, unknown> }).provider?.["cloudflare"]).toEqual([{}]);
  });

  it("without a domain, serves plain HTTP on the Elastic IP", () => {
    const bare = synth((c) => {
      c.dns = { provider: "none" };
      delete c.acmeEmail;
    });
    expect(String(bare.output?.["url"]?.["value"])).toMatch(/^http:\/\/\$\{aws_eip\..*\.public_ip\}$/);
    expect(userData(bare, "aws_instance")).toMatch(/domain = "\$\{aws_eip\..*\.public_ip\}";/);
    expect(userData(bare, "aws_instance")).toContain('tls = "none";');
  });
});

describe("LarderStack, scaled out", () => {
  const tf = synth((c) => (c.scaleOut = { enabled: true, apiServers: 2 }));

  it("adds the api-server group behind a load balancer and one garbage-collector host", () => {
    expect(one(tf, "aws_autoscaling_group")).toMatchObject({ min_size: 2 });
    expect(one(tf, "aws_lb")).toMatchObject({ load_balancer_type: "application", internal: false });
    expect(userData(tf, "aws_instance")).toMatch(/mode = "garbage-collector";[^]*tls = "load-balancer";/);
    expect(Object.values(tf.locals ?? {}).join()).toMatch(/mode = "api-server";[^]*domain = "cache.example.net";[^]*tls = "load-balancer";/);
  });

  it("points the name at the load balancer and keeps the Elastic IP on the collector", () => {
    const records = all(tf, "aws_route53_record");
    expect(records.some((r) => JSON.stringify(r["alias"] ?? null).includes("aws_lb."))).toBe(true);
    expect(String(tf.output?.["instance_id"]?.["value"])).toMatch(/aws_instance\.collector_instance/);
    expect(tf.output?.["url"]?.["value"]).toBe("https://cache.example.net");
  });

  it("gives the collector no public web ports", () => {
    const collector = one(tf, "aws_instance");
    expect(collector["vpc_security_group_ids"]).toHaveLength(1);
  });
});
