/** Periodic GC in the roles that run it: inside a monolithic server, and as a garbage-collector node. */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LARDERD_BIN, runLarderd, startDaemon } from "./support/daemon.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

async function writeConfig(dir: string, interval: string): Promise<string> {
  const file = join(dir, "server.toml");
  await writeFile(
    file,
    `[database]\nurl = "sqlite://${dir}/db"\n[storage]\ntype = "local"\npath = "${dir}/storage"\n[garbage-collection]\ninterval = "${interval}"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 9).toString("base64")}"\n`,
  );
  return file;
}

const gcLines = (out: string) => out.split("\n").filter((l) => l.includes('"msg":"gc: deleted'));

describe("periodic garbage collection", () => {
  let dir: TempDir | undefined;
  afterEach(async () => {
    await dir?.cleanup();
  });

  it("runs inside a monolithic server at start and then every interval, but not in an api-server", async () => {
    dir = await makeTempDir("gc-modes");
    const config = await writeConfig(dir.path, "1s");
    const mono = await startDaemon(config, "monolithic");
    await new Promise((r) => setTimeout(r, 2500));
    await mono.stop();
    expect(gcLines(mono.output()).length).toBeGreaterThanOrEqual(2);
    const api = await startDaemon(config, "api-server");
    await new Promise((r) => setTimeout(r, 1500));
    await api.stop();
    expect(gcLines(api.output())).toEqual([]);
  });

  it("runs as a garbage-collector node until SIGTERM, then exits 0", async () => {
    dir = await makeTempDir("gc-modes");
    const config = await writeConfig(dir.path, "1s");
    const child = spawn(process.execPath, [LARDERD_BIN, "--config", config, "--mode", "garbage-collector"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    // Two periodic runs seen, so the signal reaches a node that is running, not one still loading.
    const deadline = Date.now() + 30_000;
    while (gcLines(out).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(gcLines(out).length).toBeGreaterThanOrEqual(2);
  });

  it("does nothing periodic with interval 0s, and garbage-collector-once exits non-zero when it cannot run", async () => {
    dir = await makeTempDir("gc-modes");
    const config = await writeConfig(dir.path, "0s");
    const mono = await startDaemon(config, "monolithic");
    await new Promise((r) => setTimeout(r, 1000));
    await mono.stop();
    expect(gcLines(mono.output())).toEqual([]);
    expect(mono.output()).toContain("periodic garbage collection is disabled");
    const broken = join(dir.path, "broken.toml");
    await writeFile(broken, `[database]\nurl = "postgres://nobody:hunter2@127.0.0.1:1/none"\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 9).toString("base64")}"\n`);
    const failed = await runLarderd(["--config", broken, "--mode", "garbage-collector-once"]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/^larderd: database postgres:\/\/nobody:\[redacted\]@127\.0\.0\.1:1\/none: /);
    expect(failed.stderr).not.toContain("hunter2");
  });
});
