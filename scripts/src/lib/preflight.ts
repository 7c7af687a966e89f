/** Checks that run before a script changes anything; each failure says how to fix it. */
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { fail } from "./errors.ts";

export function isOnPath(tool: string, path: string | undefined = process.env.PATH): boolean {
  return (path ?? "").split(":").some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const INSTALL_HINTS: Record<string, string> = {
  ssh: "install the OpenSSH client (apt-get install openssh-client)",
  "ssh-keyscan": "install the OpenSSH client (apt-get install openssh-client)",
  npm: "run through `npx just …` or install Node.js with npm",
  tofu: "install OpenTofu (https://opentofu.org/docs/intro/install/)",
  terraform: "install Terraform (https://developer.hashicorp.com/terraform/install)",
};

export function verifyTool(tool: string): void {
  if (!isOnPath(tool)) fail(`${tool} is not on PATH: ${INSTALL_HINTS[tool] ?? `install ${tool}`}`);
}

/** OpenTofu when installed, Terraform otherwise: both read the JSON CDKTF writes. */
export function terraformBinary(): "tofu" | "terraform" {
  if (isOnPath("tofu")) return "tofu";
  if (isOnPath("terraform")) return "terraform";
  fail("neither tofu nor terraform is on PATH: install OpenTofu (https://opentofu.org/docs/intro/install/) or Terraform");
}
