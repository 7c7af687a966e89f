/**
 * The process supervisor (services where systemd is not PID 1) against real processes: whatever
 * moment the agent dies at, and whatever the service's processes do with SIGTERM, a later agent
 * finds the service and stops all of it — a copy it lost track of would keep the port, and the
 * release it starts next would never answer.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { groupAlive, ProcessSupervisor } from "../src/client/agent/supervisor.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const SUPERVISOR = fileURLToPath(new URL("../src/client/agent/supervisor.ts", import.meta.url));

/** The pid a pid file names ("PID STARTTIME"). */
async function pidIn(file: string): Promise<number> {
  return Number((await readFile(file, "utf8")).trim().split(/\s+/)[0]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function script(path: string, body: string): Promise<string> {
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

async function until(what: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}

describe("process supervisor", () => {
  let dir: TempDir;
  let services: string;
  const started: number[] = [];

  beforeEach(async () => {
    dir = await makeTempDir("supervisor");
    services = join(dir.path, "services");
  });
  afterEach(async () => {
    for (const pid of started.splice(0)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
    await dir.cleanup();
  });

  it("finds and stops a service whose starter was killed the moment the service ran (before it could record anything)", async () => {
    // The service's first act kills the agent that started it: any bookkeeping left to the
    // agent after the spawn never happens.
    const program = await script(join(dir.path, "serve"), 'kill -9 "$PPID"\nexec sleep 600');
    const starter = join(dir.path, "starter.ts");
    await writeFile(
      starter,
      `import { ProcessSupervisor } from ${JSON.stringify(SUPERVISOR)};\n` +
        `await new ProcessSupervisor(${JSON.stringify(services)}).start({ unit: "web", program: ${JSON.stringify(program)}, cwd: ${JSON.stringify(dir.path)}, env: { PATH: "/usr/bin:/bin" } });\n`,
    );
    const child = spawn(process.execPath, [starter], { stdio: "ignore" });
    const how = await new Promise<string | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    expect(how).toBe("SIGKILL");

    const sup = new ProcessSupervisor(services, { graceMs: 2000 });
    expect(await sup.running("web")).toBe(true);
    const pid = await pidIn(join(services, "web.pid"));
    started.push(pid);
    expect(alive(pid)).toBe(true);
    const stopped = await sup.stop("web");
    expect(stopped.ok).toBe(true);
    expect(alive(pid)).toBe(false);
    expect(await sup.running("web")).toBe(false);
  }, 30_000);

  it("stops every process of the service's group, not just the first: a child that ignores SIGTERM outlives its parent until SIGKILL", async () => {
    const childPid = join(dir.path, "child.pid");
    const program = await script(join(dir.path, "serve"), `sh -c 'trap "" TERM; echo $$ > "${childPid}"; exec sleep 600' &\nwait`);
    const sup = new ProcessSupervisor(services, { graceMs: 500 });
    const r = await sup.start({ unit: "web", program, cwd: dir.path, env: { PATH: "/usr/bin:/bin" } });
    expect(r.ok, r.output).toBe(true);
    const leader = await pidIn(join(services, "web.pid"));
    started.push(leader);
    await until(async () => (await readFile(childPid, "utf8").catch(() => "")).trim() !== "");
    const child = Number((await readFile(childPid, "utf8")).trim());
    const stopped = await sup.stop("web");
    expect(stopped.output).toContain("SIGKILL");
    expect(alive(leader)).toBe(false);
    expect(alive(child)).toBe(false);
    expect(groupAlive(leader)).toBe(false);
  }, 30_000);

  it("records the pid before the program runs, and starting again replaces the running copy", async () => {
    const seen = join(dir.path, "seen");
    const program = await script(join(dir.path, "serve"), `{ read -r p t < "${join(services, "web.pid")}"; echo "$p"; echo "$$"; } >> "${seen}"\nexec sleep 600`);
    const sup = new ProcessSupervisor(services, { graceMs: 2000 });
    const first = await sup.start({ unit: "web", program, cwd: dir.path, env: { PATH: "/usr/bin:/bin" } });
    expect(first.ok, first.output).toBe(true);
    const one = await pidIn(join(services, "web.pid"));
    started.push(one);
    const second = await sup.start({ unit: "web", program, cwd: dir.path, env: { PATH: "/usr/bin:/bin" } });
    expect(second.ok, second.output).toBe(true);
    const two = await pidIn(join(services, "web.pid"));
    started.push(two);
    expect(two).not.toBe(one);
    expect(alive(one)).toBe(false);
    expect(alive(two)).toBe(true);
    await until(async () => (await readFile(seen, "utf8").catch(() => "")).trim().split("\n").length === 4);
    const lines = (await readFile(seen, "utf8")).trim().split("\n").map(Number);
    expect(lines).toEqual([one, one, two, two]);
    await sup.stop("web");
    expect(alive(two)).toBe(false);
  }, 30_000);

  it("takes no other process for the service: a pid file that outlived its process (a reboot) names a pid now someone else's", async () => {
    // Another process group that happens to have the recorded pid, with another start time.
    const other = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
    started.push(other.pid!);
    const { mkdir } = await import("node:fs/promises");
    await mkdir(services, { recursive: true });
    await writeFile(join(services, "web.pid"), `${other.pid} 1\n`);
    const sup = new ProcessSupervisor(services, { graceMs: 500 });
    expect(await sup.running("web")).toBe(false);
    expect((await sup.stop("web")).output).toContain("not running");
    expect(alive(other.pid!)).toBe(true);
    // Started again, the service gets its own record.
    const program = await script(join(dir.path, "serve"), "exec sleep 600");
    const r = await sup.start({ unit: "web", program, cwd: dir.path, env: {} });
    expect(r.ok, r.output).toBe(true);
    const pid = await pidIn(join(services, "web.pid"));
    started.push(pid);
    expect(pid).not.toBe(other.pid);
    expect(await sup.running("web")).toBe(true);
    expect(alive(other.pid!)).toBe(true);
  });

  it("refuses a program that is missing or not executable, and starts nothing", async () => {
    const sup = new ProcessSupervisor(services);
    const missing = await sup.start({ unit: "web", program: join(dir.path, "nope"), cwd: dir.path, env: {} });
    expect(missing).toMatchObject({ ok: false });
    expect(missing.output).toContain("no such file");
    await writeFile(join(dir.path, "plain"), "#!/bin/sh\n");
    const plain = await sup.start({ unit: "web", program: join(dir.path, "plain"), cwd: dir.path, env: {} });
    expect(plain.output).toContain("not executable");
    expect(await sup.running("web")).toBe(false);
  });
});
