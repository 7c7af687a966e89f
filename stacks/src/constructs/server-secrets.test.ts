import { describe, expect, it } from "vitest";
import { ServerSecrets } from "./server-secrets.ts";
import { all, one, synthScope } from "../../test/helpers.ts";

describe("ServerSecrets", () => {
  it("creates the token-signing secret without any value", () => {
    const tf = synthScope((scope) => new ServerSecrets(scope, "secrets", { deploymentName: "t" }));
    expect(one(tf, "aws_secretsmanager_secret")).toMatchObject({ name_prefix: "larder-t-token-hs256-", recovery_window_in_days: 7 });
    expect(all(tf, "aws_secretsmanager_secret_version")).toHaveLength(0);
    expect(JSON.stringify(tf)).not.toMatch(/random_password|secret_string/);
  });
});
