/**
 * What keeps a `service` activation's `bin/serve` running. Hosts use systemd: each service is a
 * transient unit `larder-service-<unit>.service` made with `systemd-run` (restarted on failure,
 * gone after a reboot, when the agent starts it again from its profile). Where systemd is not
 * PID 1 (containers, CI, the end-to-end tests) the process supervisor runs it as a detached
 * process group tracked by a pid file: it outlives the agent like a unit does, but nothing
 * restarts it if it crashes, so it is for tests and development, not for hosts.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
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

export class ProcessSupervisor implements Supervisor {
  readonly kind = "process" as const;
  private readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  private pidFile(unit: string): string {
    return join(this.dir, `${unit}.pid`);
  }

  private async pid(unit: string): Promise<number | null> {
    try {
      const n = Number((await readFile(this.pidFile(unit), "utf8")).trim());
      return Number.isInteger(n) && n > 1 ? n : null;
    } catch {
      return null;
    }
  }

  async start(spec: ServiceSpec): Promise<{ ok: boolean; output: string }> {
    await mkdir(this.dir, { recursive: true });
    const log = await open(join(this.dir, `${spec.unit}.log`), "a");
    try {
      const child = spawn(spec.program, [], { cwd: spec.cwd, env: spec.env, detached: true, stdio: ["ignore", log.fd, log.fd] });
      const started = await new Promise<{ ok: boolean; output: string }>((resolve) => {
        child.once("spawn", () => resolve({ ok: true, output: `started ${spec.program} as pid ${child.pid}\n` }));
        child.once("error", (e) => resolve({ ok: false, output: `cannot start ${spec.program}: ${e.message}\n` }));
      });
      if (started.ok) {
        await writeFile(this.pidFile(spec.unit), `${child.pid}\n`);
        child.unref();
      }
      return started;
    } finally {
      await log.close();
    }
  }

  async stop(unit: string): Promise<{ ok: boolean; output: string }> {
    const pid = await this.pid(unit);
    if (pid === null || !alive(pid)) {
      await rm(this.pidFile(unit), { force: true });
      return { ok: true, output: `${unit} is not running\n` };
    }
    killGroup(pid, "SIGTERM");
    const deadline = Date.now() + STOP_GRACE_MS;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    if (alive(pid)) killGroup(pid, "SIGKILL");
    while (alive(pid)) await sleep(20);
    await rm(this.pidFile(unit), { force: true });
    return { ok: true, output: `stopped ${unit} (pid ${pid})\n` };
  }

  async running(unit: string): Promise<boolean> {
    const pid = await this.pid(unit);
    return pid !== null && alive(pid);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by its parent) counts as gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}
