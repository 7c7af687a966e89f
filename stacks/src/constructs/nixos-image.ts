// The official NixOS AMI, looked up by owner, release and architecture instead of a hard-coded id.
// The lookup moves with every new image, so consumers must ignore image changes (see host.ts):
// a new AMI then only affects instances launched later, never a running one.
import { Construct } from "constructs";
import { DataAwsAmi } from "@cdktf/provider-aws/lib/data-aws-ami/index.js";
import type { Architecture } from "../config.ts";

/** The AWS account that publishes NixOS's official images (https://nixos.github.io/amis/). */
export const NIXOS_AMI_OWNER = "427812963091";

export interface NixosImageProps {
  readonly release: string;
  readonly architecture: Architecture;
}

export class NixosImage extends Construct {
  readonly id: string;
  /** The device the image boots from, where the root volume's size and type are set. */
  readonly rootDeviceName: string;

  constructor(scope: Construct, id: string, props: NixosImageProps) {
    super(scope, id);
    const ami = new DataAwsAmi(this, "ami", {
      owners: [NIXOS_AMI_OWNER],
      mostRecent: true,
      filter: [
        { name: "name", values: [`nixos/${props.release}*`] },
        { name: "architecture", values: [props.architecture] },
        { name: "virtualization-type", values: ["hvm"] },
      ],
    });
    this.id = ami.id;
    this.rootDeviceName = ami.rootDeviceName;
  }
}
