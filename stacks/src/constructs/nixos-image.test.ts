import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { TerraformOutput } from "cdktf";
import { which } from "../../../server/test/support/requirements.ts";
import { evaluate } from "../../test/tf-expr.ts";
import { NixosImage } from "./nixos-image.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

function build(amiId?: string) {
  let imageId = "";
  const tf = synthScope((scope) => {
    imageId = new NixosImage(scope, "image", { release: "26.05", architecture: "arm64", amiId }).id;
    new TerraformOutput(scope, "image-id", { value: imageId });
  });
  return { tf, imageId: String(tf.output?.["image-id"]?.["value"]) };
}

describe("NixosImage", () => {
  it("lists official images of the release with a lookup that cannot fail on an empty result", () => {
    const { tf } = build();
    expect(all(tf, "aws_ami", "data")).toHaveLength(0);
    expect(one(tf, "aws_ami_ids", "data")).toMatchObject({
      owners: ["427812963091"],
      include_deprecated: true,
      sort_ascending: false,
      filter: expect.arrayContaining([
        { name: "name", values: ["nixos/26.05*"] },
        { name: "architecture", values: ["arm64"] },
        { name: "virtualization-type", values: ["hvm"] },
      ]),
    });
  });

  it("takes the newest image, or an empty id (not an error) when the release has none left", () => {
    const { imageId, tf } = build();
    const address = Object.keys(tf.data?.["aws_ami_ids"] ?? {})[0];
    expect(imageId).toBe(`\${try(element(data.aws_ami_ids.${address}.ids, 0), "")}`);
  });

  it("warns on every plan while no image is found, with a check (never an error)", () => {
    const { tf } = build();
    const checks = (tf as { check?: Record<string, { assert: { condition: string; error_message: string }[] }> }).check ?? {};
    const [check] = Object.values(checks);
    expect(check?.assert[0]?.condition).toMatch(/^\$\{length\(data\.aws_ami_ids\.[A-Za-z_0-9-]+\.ids\) > 0\}$/);
    expect(check?.assert[0]?.error_message).toMatch(/No official NixOS 26\.05 image for arm64.*set nixosRelease .* or amiId/);
  });

  it("uses a pinned AMI id as is, with no lookup at all", () => {
    const { tf, imageId } = build("ami-0123456789abcdef0");
    expect(imageId).toBe("ami-0123456789abcdef0");
    expect(tf.data).toBeUndefined();
    expect((tf as { check?: unknown }).check).toBeUndefined();
  });
});

// The synthesized expressions and check, evaluated with Terraform's documented semantics
// (stacks/test/tf-expr.ts), the data source's result given as a list: aws_ami_ids's contract (an
// empty list, never an error, when nothing matches) is what the construct relies on, unlike
// aws_ami's "no results" error. Where Terraform itself is installed (not on CI, which cannot
// download it), the same configuration is also applied by it and must agree.
const terraform = which("terraform");

function evaluateWith(ids: string[]): { imageId: unknown; checkPasses: unknown } {
  const { tf } = build();
  const [address] = Object.keys(tf.data?.["aws_ami_ids"] ?? {});
  const scope = { [`data.aws_ami_ids.${address}.ids`]: ids };
  const checks = (tf as { check?: Record<string, { assert: { condition: string }[] }> }).check ?? {};
  const [check] = Object.values(checks);
  return {
    imageId: evaluate(String(tf.output?.["image-id"]?.["value"]), scope),
    checkPasses: evaluate(check?.assert[0]?.condition ?? "", scope),
  };
}

function applyWith(ids: string[]): { status: number | null; output: string; imageId: unknown } {
  const { tf } = build();
  const [address] = Object.keys(tf.data?.["aws_ami_ids"] ?? {});
  const text = JSON.stringify({ ...tf, data: undefined, terraform: undefined, provider: undefined }).replaceAll(`data.aws_ami_ids.${address}.ids`, "local.ids");
  const config = { ...(JSON.parse(text) as Record<string, unknown>), locals: { ids } };
  const dir = mkdtempSync(path.join(tmpdir(), "larder-image-tf-"));
  writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(config));
  writeFileSync(path.join(dir, "cli.tfrc"), "");
  const env = { PATH: process.env.PATH, HOME: dir, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TF_CLI_CONFIG_FILE: path.join(dir, "cli.tfrc") };
  const run = (args: string[]) => spawnSync(terraform as string, args, { cwd: dir, env, encoding: "utf8" });
  try {
    const init = run(["init", "-input=false", "-no-color"]);
    if (init.status !== 0) throw new Error(`terraform init: ${init.stderr}`);
    const apply = run(["apply", "-auto-approve", "-input=false", "-no-color"]);
    const outputs = run(["output", "-json"]);
    const imageId = apply.status === 0 ? (JSON.parse(outputs.stdout) as Record<string, { value: unknown }>)["image-id"]?.value : undefined;
    return { status: apply.status, output: apply.stdout + apply.stderr, imageId };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("NixosImage's expressions, evaluated as Terraform does", () => {
  it("with no image left: an empty id, not an error, and the check fails (a warning on every plan)", () => {
    expect(evaluateWith([])).toEqual({ imageId: "", checkPasses: false });
    if (terraform !== null) {
      const { status, output, imageId } = applyWith([]);
      expect(status).toBe(0);
      expect(imageId).toBe("");
      expect(output).toContain("Warning: Check block assertion failed");
      expect(output).toContain("No official NixOS 26.05 image for arm64");
    }
  }, 60_000);

  it("with images, takes the first (aws_ami_ids lists the newest first) and the check passes", () => {
    expect(evaluateWith(["ami-0000000000000000b", "ami-0000000000000000a"])).toEqual({ imageId: "ami-0000000000000000b", checkPasses: true });
    if (terraform !== null) {
      const { status, output, imageId } = applyWith(["ami-0000000000000000b", "ami-0000000000000000a"]);
      expect(status).toBe(0);
      expect(imageId).toBe("ami-0000000000000000b");
      expect(output).not.toContain("Warning");
    }
  }, 60_000);

  it("the evaluation can fail: element of an empty list without try is an error, as in Terraform", () => {
    expect(() => evaluate("${element(data.x.ids, 0)}", { "data.x.ids": [] })).toThrow(/empty list/);
    expect(() => evaluate("${one(data.x.ids)}", { "data.x.ids": [] })).toThrow(/not covered/);
  });
});
