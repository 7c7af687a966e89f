/**
 * Finding a replaced instance's ssh host key, either by asking the host (ssh-keyscan, trust on
 * first use) or from the EC2 console output, which AWS authenticates: NixOS's amazon image
 * prints its host keys there between these markers at boot.
 */
import { fail } from "./errors.ts";

const BEGIN = "-----BEGIN SSH HOST KEY KEYS-----";
const END = "-----END SSH HOST KEY KEYS-----";
const ED25519 = /\bssh-ed25519 [A-Za-z0-9+/]+=*/;

/** `ssh-keyscan -t ed25519 HOST` prints `HOST ssh-ed25519 AAAA…` (and `#` comments on stderr). */
export function keyFromKeyscan(stdout: string, host: string): string {
  for (const line of stdout.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = ED25519.exec(line);
    if (match) return match[0];
  }
  fail(`ssh-keyscan got no ssh-ed25519 host key from ${host}: is the instance up and port 22 open? Try --from-console`);
}

export function keyFromConsole(output: string, instanceId: string): string {
  const start = output.lastIndexOf(BEGIN);
  const end = output.indexOf(END, start);
  if (start < 0 || end < 0) {
    fail(`the console output of ${instanceId} has no host key block yet (it appears a few minutes after boot); retry later or drop --from-console`);
  }
  const match = ED25519.exec(output.slice(start, end));
  if (!match) fail(`the console output of ${instanceId} lists no ssh-ed25519 host key`);
  return match[0];
}
