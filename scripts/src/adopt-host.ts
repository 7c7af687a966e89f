/**
 * After the instance was replaced (new host key), make the secrets readable by the new host:
 * fetch its ssh host key, put it in secrets/recipients.json, rekey, and say what to do next.
 */
import { EC2Client, GetConsoleOutputCommand } from "@aws-sdk/client-ec2";
import { Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { verifyAwsCredentials } from "./lib/aws.ts";
import { repoRoot } from "./lib/cli.ts";
import { fail } from "./lib/errors.ts";
import { run } from "./lib/exec.ts";
import { keyFromConsole, keyFromKeyscan } from "./lib/host-key.ts";
import { runMain } from "./lib/main.ts";
import { verifyTool } from "./lib/preflight.ts";
import { readOutputs, REPO_ROOT, requireOutput } from "./lib/stack.ts";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** The host entry to update: the one named, or the only host in the config. */
export function hostEntry(recipientsJson: string, name?: string): { name: string; keys: string[] } {
  const config = JSON.parse(recipientsJson) as { hosts?: Record<string, string | string[]> };
  const hosts = config.hosts ?? {};
  const names = Object.keys(hosts);
  const chosen = name ?? (names.length === 1 ? names[0] : undefined);
  if (chosen === undefined) {
    fail(names.length === 0 ? "secrets/recipients.json lists no hosts: add one under \"hosts\" first" : `several hosts (${names.join(", ")}): pass --name NAME`);
  }
  const keys = hosts[chosen];
  if (keys === undefined) fail(`"${chosen}" is not a host in secrets/recipients.json (hosts: ${names.join(", ") || "none"})`);
  return { name: chosen, keys: typeof keys === "string" ? [keys] : keys };
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command("adopt-host")
    .description("give a replaced instance's new host key access to the secrets (fetch key, update recipients, rekey)")
    .option("--host <host>", "address to ssh-keyscan (default: the stack's public_ip output)")
    .option("--from-console", "read the key from the EC2 console output instead of ssh-keyscan", false)
    .option("--instance-id <id>", "instance for --from-console (default: the stack's instance_id output)")
    .option("--region <region>", "AWS region for --from-console (default: the stack's region output)")
    .option("--stack <name>", "synthesized stack to read outputs from")
    .option("--name <name>", "host entry in secrets/recipients.json (default: the only one)")
    .addOption(new Option("-i, --identity <path>", "key to decrypt with while rekeying (repeatable)").default([]).argParser(collect))
    .option("--dry-run", "show the key and the steps, change nothing", false);
  program.parse(argv);
  const options = program.opts<{ host?: string; fromConsole: boolean; instanceId?: string; region?: string; stack?: string; name?: string; identity: string[]; dryRun: boolean }>();
  const root = repoRoot();
  const secretsDir = join(root, "secrets");
  const entry = hostEntry(readFileSync(join(secretsDir, "recipients.json"), "utf8"), options.name);

  let key: string;
  if (options.fromConsole) {
    const outputs = options.instanceId !== undefined && options.region !== undefined ? {} : await readOutputs(root, options.stack);
    const instanceId = options.instanceId ?? requireOutput(outputs, "instance_id", "pass --instance-id");
    const region = options.region ?? requireOutput(outputs, "region", "pass --region");
    const ec2 = new EC2Client({ region });
    await verifyAwsCredentials(ec2);
    const response = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
    key = keyFromConsole(Buffer.from(response.Output ?? "", "base64").toString("utf8"), instanceId);
  } else {
    verifyTool("ssh-keyscan");
    const host = options.host ?? requireOutput(await readOutputs(root, options.stack), "public_ip", "pass --host HOST");
    key = keyFromKeyscan(await run("ssh-keyscan", ["-t", "ed25519", "-T", "15", host], { capture: true }), host);
  }
  process.stderr.write(`host key of ${entry.name}: ${key}\n`);
  if (entry.keys.length === 1 && entry.keys[0]?.split(" ").slice(0, 2).join(" ") === key) {
    process.stderr.write(`${entry.name} already has this key; nothing to do\n`);
    return 0;
  }
  const cli = join(REPO_ROOT, "secrets", "bin", "larder-secrets.js");
  const identities = options.identity.flatMap((path) => ["-i", path]);
  if (options.dryRun) {
    process.stderr.write(`dry run: would replace ${entry.name}'s key in secrets/recipients.json and re-encrypt the secrets it reads\n`);
    return 0;
  }
  await run(process.execPath, [cli, "--dir", secretsDir, "set-key", entry.name, key]);
  await run(process.execPath, [cli, "--dir", secretsDir, ...identities, "rekey"]);
  process.stderr.write(
    [
      "",
      "next: commit secrets/ and deploy the host configuration so agenix on the new instance can decrypt:",
      "  git add secrets && git commit -m 'secrets: adopt new host key' && just deploy",
      "",
    ].join("\n"),
  );
  return 0;
}

if (import.meta.main) runMain(import.meta.url, () => main(process.argv));
