import { describe, expect, it } from "vitest";
import { Testing } from "cdktf";
import { LarderStack, OUTPUT_NAMES } from "./larder-stack.ts";
import { parseDeployment } from "./config.ts";
import type { DeploymentInput } from "./config.ts";
import type { TerraformJson } from "./policy.ts";
import { checkPolicy } from "./policy.ts";
import { all, one, validInput } from "../test/helpers.ts";
import { HEALTH_CHECK_PATH } from "./constructs/scale-out.ts";
import { DISK_METRIC } from "./constructs/disk-alarm.ts";
import { LIVENESS_PATH } from "../../server/src/routes/health.ts";
import { readFileSync } from "node:fs";
import path from "node:path";

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

describe("the AMI can never break plan or destroy", () => {
  it("looks images up only with aws_ami_ids (empty is not an error), falling back to an empty id", () => {
    for (const tf of [synth(), synth((c) => (c.scaleOut = { enabled: true }))]) {
      expect(all(tf, "aws_ami", "data")).toHaveLength(0);
      expect(all(tf, "aws_ami_ids", "data")).toHaveLength(1);
      const images = [...all(tf, "aws_instance").map((i) => i["ami"]), ...all(tf, "aws_launch_template").map((t) => t["image_id"])];
      for (const image of images) expect(String(image)).toMatch(/^\$\{try\(element\(data\.aws_ami_ids\.[^)]+\.ids, 0\), ""\)\}$/);
    }
  });

  it("with amiId, looks nothing up and uses the id everywhere", () => {
    const tf = synth((c) => {
      c.amiId = "ami-0123456789abcdef0";
      c.scaleOut = { enabled: true };
    });
    expect(tf.data?.["aws_ami_ids"]).toBeUndefined();
    expect(one(tf, "aws_instance")["ami"]).toBe("ami-0123456789abcdef0");
    expect(one(tf, "aws_launch_template")["image_id"]).toBe("ami-0123456789abcdef0");
  });
});

describe("release changes", () => {
  const hostConfigs = (tf: TerraformJson): unknown[] => [all(tf, "aws_instance").map((i) => i["user_data"]), tf.locals];

  it("keep the user data, and with it system.stateVersion, byte for byte", () => {
    for (const scaleOut of [false, true]) {
      const before = synth((c) => {
        c.nixosRelease = "26.05";
        if (scaleOut) c.scaleOut = { enabled: true };
      });
      const after = synth((c) => {
        c.nixosRelease = "26.11";
        if (scaleOut) c.scaleOut = { enabled: true };
      });
      expect(hostConfigs(after)).toEqual(hostConfigs(before));
      expect(JSON.stringify(all(after, "aws_ami_ids", "data"))).toContain("nixos/26.11*");
    }
    expect(userData(synth(), "aws_instance")).toMatch(/system\.stateVersion = if builtins\.pathExists \/var\/lib\/larder-aws\/state-version then/);
  });
});

describe("health checks: ALB, nginx and larderd agree", () => {
  const tf = synth((c) => (c.scaleOut = { enabled: true }));
  const hostProfile = readFileSync(path.join(import.meta.dirname, "../../nixos-modules/aws-host.nix"), "utf8");

  it("the ALB checks larderd's liveness path, which does not depend on the database", () => {
    expect(one(tf, "aws_lb_target_group")["health_check"]).toMatchObject({ path: LIVENESS_PATH, matcher: "200" });
    expect(HEALTH_CHECK_PATH).toBe(LIVENESS_PATH);
    expect(LIVENESS_PATH).toBe("/_api/v1/health/live");
  });

  it("the api servers' nginx is the default server, so a check whose Host is the target's IP reaches larderd", () => {
    expect(Object.values(tf.locals ?? {}).join()).toContain('tls = "load-balancer";');
    expect(hostProfile).toContain('services.nginx.virtualHosts.${cfg.domain}.default = lib.mkIf (cfg.tls == "load-balancer") true;');
  });

  it("the group replaces servers only on the ALB's verdict, after a grace long enough for a first boot that builds larder", () => {
    expect(one(tf, "aws_autoscaling_group")).toMatchObject({ health_check_type: "ELB", health_check_grace_period: 2400 });
    const cached = synth((c) => {
      c.scaleOut = { enabled: true };
      c.binaryCache = { url: "https://cache.example.net/larder", publicKey: "larder:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" };
    });
    expect(one(cached, "aws_autoscaling_group")["health_check_grace_period"]).toBe(1200);
  });
});

describe("hosts' identity and alarms", () => {
  it("no host role carries AmazonSSMManagedInstanceCore", () => {
    const tf = synth();
    expect(JSON.stringify(tf)).not.toContain("AmazonSSMManagedInstanceCore");
    expect(JSON.stringify(tf)).toContain("ssmmessages:OpenDataChannel");
  });

  it("alarms on every mode's fullest root file system, to an SNS topic that can mail the operator", () => {
    const single = synth((c) => {
      c.alarmEmail = "ops@example.net";
      c.host = { diskAlarmPercent: 75 };
    });
    expect(one(single, "aws_cloudwatch_metric_alarm")).toMatchObject({
      namespace: "Larder",
      metric_name: "RootDiskUsedPercent",
      dimensions: { Deployment: "test", Mode: "monolithic" },
      statistic: "Maximum",
      threshold: 75,
      comparison_operator: "GreaterThanThreshold",
    });
    expect(String(one(single, "aws_cloudwatch_metric_alarm")["alarm_actions"])).toMatch(/aws_sns_topic\./);
    expect(one(single, "aws_sns_topic_subscription")).toMatchObject({ protocol: "email", endpoint: "ops@example.net" });
    const scaled = synth((c) => (c.scaleOut = { enabled: true }));
    expect(all(scaled, "aws_cloudwatch_metric_alarm").map((a) => (a["dimensions"] as { Mode: string }).Mode).sort()).toEqual(["api-server", "garbage-collector"]);
    expect(all(scaled, "aws_sns_topic_subscription")).toHaveLength(0);
  });

  it("the hosts publish what the alarm reads", () => {
    const text = userData(synth(), "aws_instance");
    expect(text).toContain('deployment = "test";');
    expect(text).toContain('metricsNamespace = "Larder";');
    const modules = path.join(import.meta.dirname, "../../nixos-modules");
    expect(readFileSync(path.join(modules, "scripts.nix"), "utf8")).toContain(`--metric-name ${DISK_METRIC.name}`);
    expect(readFileSync(path.join(modules, "aws-host.nix"), "utf8")).toContain('dimensions = "Deployment=${cfg.deployment},Mode=${cfg.mode}";');
    expect(DISK_METRIC.dimensions).toEqual(["Deployment", "Mode"]);
  });
});

describe("binary cache and source", () => {
  it("puts the substituter and its key in every host's user data", () => {
    const tf = synth((c) => {
      c.binaryCache = { url: "https://cache.example.net/larder", publicKey: "larder:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" };
      c.scaleOut = { enabled: true };
    });
    for (const text of [userData(tf, "aws_instance"), ...Object.values(tf.locals ?? {}).map(String)]) {
      expect(text).toContain('nix.settings.extra-substituters = [ "https://cache.example.net/larder" ];');
      expect(text).toContain('nix.settings.extra-trusted-public-keys = [ "larder:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" ];');
    }
  });

  it("lets the hosts read a private source's netrc secret, and nothing more", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:larder/netrc-AbCdEf";
    const tf = synth((c) => (c.larderSource = { ...c.larderSource, netrcSecretArn: arn }));
    expect(userData(tf, "aws_instance")).toContain(`--secret-id "${arn}"`);
    const reads = all(tf, "aws_iam_policy_document", "data").flatMap((d) => (d["statement"] ?? []) as { sid?: string; resources: string[] }[]).find((s) => s.sid === "ReadServerSecrets");
    expect(reads?.resources).toContain(arn);
  });
});

describe("every new option keeps every policy rule", () => {
  it("pinned AMI, binary cache, flake source with a netrc, no-verify, alarm mail, scaled out or not", () => {
    for (const scaleOut of [false, true]) {
      const tf = synth((c) => {
        c.amiId = "ami-0123456789abcdef0";
        c.binaryCache = { url: "https://cache.example.net/larder", publicKey: "larder:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" };
        c.larderSource = { flake: "github:me/larder/0123456789abcdef0123456789abcdef01234567", netrcSecretArn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:netrc-AbC" };
        c.database = { tls: "no-verify" };
        c.alarmEmail = "ops@example.net";
        if (scaleOut) c.scaleOut = { enabled: true };
      });
      expect(checkPolicy(tf)).toEqual([]);
    }
  });
});
