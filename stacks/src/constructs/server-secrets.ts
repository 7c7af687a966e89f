// The token-signing key's home. Terraform creates the secret but never its value:
//  - a random_password (or any generated value) would be written in plain text into the Terraform
//    state, which every operator and CI job reads; invariant 5 keeps secrets out of the state too;
//  - the first host to boot finds the secret without a current version, generates 32 random bytes and
//    stores them with PutSecretValue under a fixed client request token, so hosts that boot together
//    (the auto-scaling group) converge on one value instead of racing; later hosts just read it.
// Replacing an instance therefore keeps every issued token valid, with no copying by hand.
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
      description: "larder JWT HS256 signing key (base64); generated on the first host at first boot",
      recoveryWindowInDays: 7,
    });
  }
}
