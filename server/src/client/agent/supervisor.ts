/**
 * What keeps a `service` activation's `bin/serve` running. Hosts use systemd: each service is a
 * transient unit `larder-service-<unit>.service` made with `systemd-run` (restarted on failure,
 * gone after a reboot, when the agent starts it again from its profile). Where systemd is not
 * PID 1 (containers, CI, the end-to-end tests) the process supervisor runs it as a detached
 * process group tracked by a pid file: it outlives the agent like a unit does, but nothing
 * restarts it if it crashes, so it is for tests and development, not for hosts.
 */
import { spawn } from "node:child_process";
import { constants, readdirSync, readFileSync } from "node:fs";
import { access, mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { killGroup, runCommand } from "./run.ts";

export interface ServiceSpec {
  /** The unit name from the activation (`[a-z0-9][a-z0-9_-]*`). */
  unit: string;
  /** The program to run, a file path on this machine. */
  program: string;
  cwd: string;
  env: Record<string, string>;
}

export interface Supervisor {
  readonly kind: "systemd" | "process";
  start(spec: ServiceSpec): Promise<{ ok: boolean; output: string }>;
  /** Stops it and waits until it is gone; stopping a stopped service succeeds. */
  stop(unit: string): Promise<{ ok: boolean; output: string }>;
  running(unit: string): Promise<boolean>;
}

export const unitName = (unit: string): string => `larder-service-${unit}.service`;

export class SystemdSupervisor implements Supervisor {
  readonly kind = "systemd" as const;
  /** Extra unit properties for every service (`User=app`, `DynamicUser=yes`, …), passed as `--property`. */
  private readonly properties: readonly string[];
  private readonly env: Record<string, string>;
  constructor(properties: readonly string[] = [], env: Record<string, string> = process.env as Record<string, string>) {
    this.properties = properties;
    this.env = env;
  }

  async start(spec: ServiceSpec): Promise<{ ok: boolean; output: string }> {
    // A failed transient unit keeps its name until reset.
    await runCommand(["systemctl", "reset-failed", unitName(spec.unit)], { env: this.env, timeoutMs: 30_000 });
    return runCommand(
      [
        "systemd-run",
        `--unit=${unitName(spec.unit)}`,
        `--description=larder service ${spec.unit}`,
        "--property=Restart=on-failure",
        "--property=RestartSec=2",
        `--working-directory=${spec.cwd}`,
        ...this.properties.map((p) => `--property=${p}`),
        ...Object.entries(spec.env).map(([k, v]) => `--setenv=${k}=${v}`),
        spec.program,
      ],
      { env: this.env, timeoutMs: 120_000 },
    );
  }

  async stop(unit: string): Promise<{ ok: boolean; output: string }> {
    if (!(await this.running(unit))) return { ok: true, output: `${unitName(unit)} is not running\n` };
    return runCommand(["systemctl", "stop", unitName(unit)], { env: this.env, timeoutMs: 300_000 });
  }

  async running(unit: string): Promise<boolean> {
    return (await runCommand(["systemctl", "is-active", "--quiet", unitName(unit)], { env: this.env, timeoutMs: 30_000 })).ok;
  }
}

/** How long a stopping service gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 10_000;
/** How long a group may take to disappear after SIGKILL before stop reports failure. */
const KILL_WAIT_MS = 10_000;
/** How long a started process gets to record its own pid before the start counts as failed. */
const RECORD_MS = 10_000;

/**
 * The service records its own pid, before it becomes the program: were the agent killed
 * between spawning it and writing the file itself, a restarted agent would find no pid file,
 * start a second copy, and never stop the first (which keeps the port). `exec` keeps the pid.
 * With the pid goes the process's start time (field 22 of /proc/PID/stat, where there is one),
 * so a pid file that outlived its process — a reboot, a crash — never makes the supervisor take
 * an unrelated process that got the same pid for the service, let alone stop it. Shell builtins
 * only: the service's environment need not have a PATH.
 */
const RECORD_AND_EXEC = [
  'f=$0; p=$1; t=""',
  'if [ -r /proc/$$/stat ]; then read -r s < /proc/$$/stat; set -- $s; t=${22}; fi',
  'echo "$$ $t" > "$f" && exec "$p"',
].join("\n");

/** A process's start time in clock ticks since boot, or null where /proc cannot tell. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export class ProcessSupervisor implements Supervisor {
  readonly kind = "process" as const;
  private readonly dir: string;
  private readonly graceMs: number;
  constructor(dir: string, o: { graceMs?: number } = {}) {
    this.dir = dir;
    this.graceMs = o.graceMs ?? STOP_GRACE_MS;
  }

  private pidFile(unit: string): string {
    return join(this.dir, `${unit}.pid`);
  }

  /** The service's pid, if its pid file names a process that is still the one it recorded. */
  private async pid(unit: string): Promise<number | null> {
    let text = "";
    // The line is written by one small write; a read between the truncation and the write sees
    // nothing yet, so an unterminated line is read again.
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        text = await readFile(this.pidFile(unit), "utf8");
      } catch {
        return null;
      }
      if (text.endsWith("\n")) break;
      await sleep(5);
    }
    if (!text.endsWith("\n")) return null;
    const [first, recorded] = text.trim().split(/\s+/);
    const n = Number(first);
    if (!Number.isInteger(n) || n <= 1) return null;
    if (recorded !== undefined && recorded !== "") {
      const now = startTime(n);
      if (now !== null && now !== recorded) return null;
    }
    return n;
  }

  async start(spec: ServiceSpec): Promise<{ ok: boolean; output: string }> {
    try {
      await access(spec.program, constants.X_OK);
    } catch (e) {
      return { ok: false, output: `cannot start ${spec.program}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "not executable"}\n` };
    }
    // One copy at a time, whoever started the last one.
    const before = await this.stop(spec.unit);
    if (!before.ok) return before;
    await mkdir(this.dir, { recursive: true });
    const pidFile = this.pidFile(spec.unit);
    const log = await open(join(this.dir, `${spec.unit}.log`), "a");
    try {
      const child = spawn("/bin/sh", ["-c", RECORD_AND_EXEC, pidFile, spec.program], { cwd: spec.cwd, env: spec.env, detached: true, stdio: ["ignore", log.fd, log.fd] });
      const spawned = await new Promise<string | null>((resolve) => {
        child.once("spawn", () => resolve(null));
        child.once("error", (e) => resolve(e.message));
      });
      if (spawned !== null) return { ok: false, output: `cannot start ${spec.program}: ${spawned}\n` };
      let exited = false;
      child.once("exit", () => (exited = true));
      child.unref();
      const deadline = Date.now() + RECORD_MS;
      while ((await this.pid(spec.unit)) !== child.pid) {
        if (exited || Date.now() > deadline) {
          killGroup(child.pid, "SIGKILL");
          return { ok: false, output: `cannot start ${spec.program}: it did not record its pid in ${pidFile}\n` };
        }
        await sleep(5);
      }
      const stopped = before.output.endsWith("is not running\n") ? "" : before.output;
      return { ok: true, output: `${stopped}started ${spec.program} as pid ${child.pid}\n` };
    } finally {
      await log.close();
    }
  }

  /** Stops the whole process group: a leader gone while its children still hold the port is not stopped. */
  async stop(unit: string): Promise<{ ok: boolean; output: string }> {
    const pid = await this.pid(unit);
    if (pid === null || !groupAlive(pid)) {
      await rm(this.pidFile(unit), { force: true });
      return { ok: true, output: `${unit} is not running\n` };
    }
    killGroup(pid, "SIGTERM");
    const deadline = Date.now() + this.graceMs;
    while (groupAlive(pid) && Date.now() < deadline) await sleep(50);
    let how = "";
    if (groupAlive(pid)) {
      killGroup(pid, "SIGKILL");
      how = ` with SIGKILL after ${this.graceMs} ms`;
    }
    // A process stuck in the kernel (uninterruptible I/O) ignores even SIGKILL: give up rather
    // than hang the agent, and keep the pid file so the next stop tries again.
    const killDeadline = Date.now() + KILL_WAIT_MS;
    while (groupAlive(pid) && Date.now() < killDeadline) await sleep(20);
    if (groupAlive(pid)) return { ok: false, output: `${unit} (process group ${pid}) is still running ${KILL_WAIT_MS} ms after SIGKILL\n` };
    await rm(this.pidFile(unit), { force: true });
    return { ok: true, output: `stopped ${unit} (process group ${pid})${how}\n` };
  }

  async running(unit: string): Promise<boolean> {
    const pid = await this.pid(unit);
    return pid !== null && groupAlive(pid);
  }
}

/** Whether any process of group `pgid` is alive; zombies (exited, not yet reaped) count as gone. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return true;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, "utf8");
    } catch {
      continue;
    }
    // After the command's closing parenthesis: state, ppid, pgrp, …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") return true;
  }
  return false;
}
