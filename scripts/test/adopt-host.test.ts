/**
 * adopt-host end to end, with the EC2 console output from an SDK-level mock (AWS cannot be
 * reached) and everything else real: ssh-keygen for the new host key, the larder-secrets CLI for
 * set-key and rekey, and a decrypt with the new host's private key at the end.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EC2Client, GetConsoleOutputCommand } from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect } from "vitest";
import { ageKey } from "../../secrets/test/helpers.ts";
import { itWith } from "../../secrets/test/tools.ts";
import { main } from "../src/adopt-host.ts";
import { REPO, tempDir } from "./helpers.ts";

const ec2 = mockClient(EC2Client);
const SECRETS_CLI = join(REPO, "secrets", "bin", "larder-secrets.js");

function secrets(dir: string, args: string[], input = "") {
  const r = spawnSync(process.execPath, [SECRETS_CLI, "--dir", dir, ...args], { input, encoding: "utf8", env: { PATH: process.env.PATH, HOME: "/nonexistent" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function deployment() {
  const root = tempDir();
  const dir = join(root, "secrets");
  mkdirSync(dir);
  const admin = await ageKey(root, "admin");
  const adminFile = admin.identityFile;
  const keygen = (name: string) => {
    const key = join(root, name);
    expect(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "root@larder", "-f", key]).status).toBe(0);
    return { key, pub: readFileSync(`${key}.pub`, "utf8").trim() };
  };
  const oldHost = keygen("old_host_key");
  const newHost = keygen("new_host_key");
  writeFileSync(
    join(dir, "recipients.json"),
    JSON.stringify({
      people: { admin: admin.recipient },
      hosts: { larder: oldHost.pub },
      groups: { admins: ["admin"], servers: ["larder"] },
      secrets: { "larderd.env.age": ["admins", "servers"] },
    }),
  );
  expect(secrets(dir, ["add", "larderd.env.age"], "LARDER_TOKEN_SECRET=s3cret\n").code).toBe(0);
  const consoleOutput = [
    "<<< NixOS Stage 2 >>>",
    "-----BEGIN SSH HOST KEY KEYS-----",
    newHost.pub,
    "-----END SSH HOST KEY KEYS-----",
  ].join("\r\n");
  ec2.on(GetConsoleOutputCommand, { InstanceId: "i-0new", Latest: true }).resolves({ Output: Buffer.from(consoleOutput).toString("base64") });
  const argv = ["node", "adopt-host", "--from-console", "--instance-id", "i-0new", "--region", "eu-west-1", "-i", adminFile];
  return { root, dir, oldHost, newHost, argv };
}

beforeEach(() => {
  ec2.reset();
  process.env.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE";
  process.env.AWS_SECRET_ACCESS_KEY = "example-secret";
});
afterEach(() => {
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
  delete process.env.LARDER_ROOT;
});

describe("adopt-host", () => {
  itWith(["ssh-keygen"])("puts the new host key in recipients.json and rekeys, so the new host can decrypt", async () => {
    const d = await deployment();
    process.env.LARDER_ROOT = d.root;
    expect(await main(d.argv)).toBe(0);
    const config = JSON.parse(readFileSync(join(d.dir, "recipients.json"), "utf8"));
    expect(config.hosts.larder).toBe(d.newHost.pub.split(" ").slice(0, 2).join(" "));
    expect(secrets(d.dir, ["-i", d.newHost.key, "decrypt", "larderd.env.age"]).stdout).toBe("LARDER_TOKEN_SECRET=s3cret\n");
    expect(secrets(d.dir, ["-i", d.oldHost.key, "decrypt", "larderd.env.age"]).code).toBe(1);
    expect(secrets(d.dir, ["check"]).code).toBe(0);
    // Running it again finds nothing to do.
    const before = readFileSync(join(d.dir, "larderd.env.age"));
    expect(await main(d.argv)).toBe(0);
    expect(readFileSync(join(d.dir, "larderd.env.age")).equals(before)).toBe(true);
  });

  itWith(["ssh-keygen"])("--dry-run changes nothing", async () => {
    const d = await deployment();
    process.env.LARDER_ROOT = d.root;
    const config = readFileSync(join(d.dir, "recipients.json"));
    const secret = readFileSync(join(d.dir, "larderd.env.age"));
    expect(await main([...d.argv, "--dry-run"])).toBe(0);
    expect(readFileSync(join(d.dir, "recipients.json")).equals(config)).toBe(true);
    expect(readFileSync(join(d.dir, "larderd.env.age")).equals(secret)).toBe(true);
    expect(secrets(d.dir, ["-i", d.newHost.key, "decrypt", "larderd.env.age"]).code).toBe(1);
  });
});
