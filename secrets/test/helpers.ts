import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { afterEach } from "vitest";

export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), "../bin/larder-secrets.js");

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "larder-secrets-test-"));
  made.push(dir);
  return dir;
}

export interface AgeKey {
  identityFile: string;
  recipient: string;
}

/** A fresh X25519 identity written to `dir/name.txt`, the way age-keygen writes it. */
export async function ageKey(dir: string, name: string): Promise<AgeKey> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const identityFile = join(dir, `${name}.txt`);
  writeFileSync(identityFile, `# public key: ${recipient}\n${identity}\n`, { mode: 0o600 });
  return { identityFile, recipient };
}

export function writeConfig(dir: string, config: object): void {
  writeFileSync(join(dir, "recipients.json"), `${JSON.stringify(config, null, 2)}\n`);
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a child Node (the same Node 24 that runs the tests). */
export function cli(args: string[], options: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Run {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", ...options.env },
    input: options.input ?? "",
    cwd: options.cwd,
    encoding: "utf8",
  });
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

export function cliAsync(args: string[], env: Record<string, string>) {
  return spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: "/nonexistent", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
}

export function run(command: string, args: string[], input?: string | Uint8Array): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { input, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
