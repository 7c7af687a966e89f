// The token-signing key's home. Terraform creates the secret but never its value:
//  - a random_password (or any value Terraform generates) is written in plain text into the state,
//    which every operator and CI job reads; invariant 5 keeps secret values out of Terraform;
//  - the value is set once per deployment, by the operator, straight from a random source into
//    Secrets Manager (docs/STACKS.md has the one command); hosts only ever read it.
// Generating it on the first host instead was weighed: N api servers booting together would race
// for it, and every host would need write access to the key. Setting it once is one command, and
// replacing an instance still needs nothing: the new host reads the same secret by ARN.
import { Construct } from "constructs";
import { SecretsmanagerSecret } from "@cdktf/provider-aws/lib/secretsmanager-secret/index.js";

export interface ServerSecretsProps {
  readonly deploymentName: string;
}

export class ServerSecrets extends Construct {
  readonly tokenSecret: SecretsmanagerSecret;

  constructor(scope: Construct, id: string, props: ServerSecretsProps) {
    super(scope, id);
    this.tokenSecret = new SecretsmanagerSecret(this, "token-signing-key", {
      // A prefix, because a deleted secret's name stays reserved for its recovery window.
      namePrefix: `larder-${props.deploymentName}-token-hs256-`,
      description: "larder JWT HS256 signing key, bare base64 (set once: see docs/STACKS.md)",
      recoveryWindowInDays: 7,
    });
  }
}
