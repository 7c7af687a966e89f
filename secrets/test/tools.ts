/**
 * Tests that need a system tool (age, ssh-keygen) skip with a reason when it is missing, except
 * under CI=true, where a missing tool is a failure: CI installs them (.ci/run).
 */
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { it } from "vitest";

export function onPath(tool: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** `it`, or a skipping/failing stand-in when one of `tools` is not installed. */
export function itWith(tools: string[]): typeof it {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return it;
  const packages = [...new Set(missing.map((t) => (t.startsWith("ssh") ? "openssh-client" : t.startsWith("age") ? "age" : t)))];
  const reason = `needs ${missing.join(", ")} on PATH (apt-get install ${packages.join(" ")})`;
  if (process.env.CI === "true") {
    return ((name: string) => it(name, () => {
      throw new Error(`${reason}; CI must have it`);
    })) as unknown as typeof it;
  }
  return ((name: string) => it.skip(`${name} [skipped: ${reason}]`, () => {})) as unknown as typeof it;
}
