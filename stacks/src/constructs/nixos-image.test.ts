import { describe, expect, it } from "vitest";
import { TerraformOutput } from "cdktf";
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
