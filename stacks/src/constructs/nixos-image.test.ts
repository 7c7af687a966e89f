import { describe, expect, it } from "vitest";
import { NixosImage } from "./nixos-image.ts";
import { one, synthScope } from "../../test/helpers.ts";

describe("NixosImage", () => {
  it("looks up the newest official image by owner, release and architecture", () => {
    const tf = synthScope((scope) => new NixosImage(scope, "image", { release: "25.05", architecture: "arm64" }));
    expect(one(tf, "aws_ami", "data")).toMatchObject({
      owners: ["427812963091"],
      most_recent: true,
      filter: [
        { name: "name", values: ["nixos/25.05*"] },
        { name: "architecture", values: ["arm64"] },
        { name: "virtualization-type", values: ["hvm"] },
      ],
    });
  });
});
