// The AMI the hosts boot: an explicit id from the deployment, or the newest official NixOS image of
// a release. NixOS deprecates a release's images 90 days after they are published and deletes them
// months after the release ends, so the lookup must never fail a plan or a destroy: aws_ami_ids
// returns an empty list where aws_ami fails, and an empty result falls back to "" (only an instance
// created from it fails, with AWS's own error) plus a check that warns on every plan.
// The lookup moves with every new image, so consumers ignore image changes unless the id is pinned
// (see host.ts, scale-out.ts): a new image then only affects instances launched later.
import { Construct } from "constructs";
import { Fn, TerraformStack, Token } from "cdktf";
import { DataAwsAmiIds } from "@cdktf/provider-aws/lib/data-aws-ami-ids/index.js";
import type { Architecture } from "../config.ts";

/** The AWS account that publishes NixOS's official images (https://nixos.github.io/amis/). */
export const NIXOS_AMI_OWNER = "427812963091";

/** NixOS registers its images with this root device; the launch template sizes the root volume on it. */
export const NIXOS_ROOT_DEVICE = "/dev/xvda";

export interface NixosImageProps {
  readonly release: string;
  readonly architecture: Architecture;
  /** A pinned AMI id; no lookup happens at all. */
  readonly amiId: string | undefined;
}

export class NixosImage extends Construct {
  readonly id: string;
  readonly rootDeviceName = NIXOS_ROOT_DEVICE;
  /** Whether `id` is a literal pinned by the operator (changes are deliberate, so they apply). */
  readonly pinned: boolean;

  constructor(scope: Construct, id: string, props: NixosImageProps) {
    super(scope, id);
    this.pinned = props.amiId !== undefined;
    if (props.amiId !== undefined) {
      this.id = props.amiId;
      return;
    }
    const found = new DataAwsAmiIds(this, "ami-ids", {
      owners: [NIXOS_AMI_OWNER],
      // Deprecated images still launch; they are merely hidden from default listings.
      includeDeprecated: true,
      sortAscending: false,
      filter: [
        { name: "name", values: [`nixos/${props.release}*`] },
        { name: "architecture", values: [props.architecture] },
        { name: "virtualization-type", values: ["hvm"] },
        { name: "state", values: ["available"] },
      ],
    });
    this.id = Token.asString(Fn.try([Fn.element(found.ids, 0), ""]));
    // A check block warns and never fails: a running deployment keeps planning and destroying.
    const address = `data.${found.terraformResourceType}.${found.friendlyUniqueId}`;
    TerraformStack.of(this).addOverride(`check.${found.friendlyUniqueId}`, {
      assert: [
        {
          condition: `\${length(${address}.ids) > 0}`,
          error_message:
            `No official NixOS ${props.release} image for ${props.architecture} in this region (the release may have ended). ` +
            "Running instances are unaffected, but a new one cannot start: set nixosRelease to a supported release or amiId " +
            "to an image id (docs/AWS.md, \"Choosing the NixOS image\").",
        },
      ],
    });
  }
}
