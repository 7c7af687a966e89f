/**
 * larderd as the bench runs it: its own process (bin/larderd.js, api-server mode, a generated
 * server.toml), so its memory can be read from /proc and its CPU profiled with --cpu-prof.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, run, waitForHttp } from "./proc.ts";

const BIN = fileURLToPath(new URL("../bin/larderd.js", import.meta.url));

export type StorageSpec = { type: "local" } | { type: "s3"; endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string; prefix: string };

export interface LarderdOptions {
  dir: string;
  databaseUrl: string;
  storage: StorageSpec;
  /** Directory for a V8 CPU profile written when the server stops. */
  cpuProfDir?: string;
  /** Extra Node/V8 flags (e.g. --trace-gc), and a file for larderd's stdout, where V8's traces go. */
  nodeArgs?: string[];
  stdoutFile?: string;
}

export interface Larderd {
  url: string;
  pid: number;
  configFile: string;
  /** Runs an admin subcommand (create-cache, make-token) on this server's config; returns stdout. */
  admin(args: string[]): Promise<string>;
  memory(): { rssMiB: number; hwmMiB: number };
  stop(): Promise<void>;
}

export async function startLarderd(o: LarderdOptions): Promise<Larderd> {
  await mkdir(o.dir, { recursive: true });
  const port = await freePort();
  const storage =
    o.storage.type === "local"
      ? `[storage]\ntype = "local"\npath = ${JSON.stringify(join(o.dir, "storage"))}\n`
      : `[storage]\ntype = "s3"\nregion = "${o.storage.region}"\nbucket = "${o.storage.bucket}"\nendpoint = "${o.storage.endpoint}"\nprefix = "${o.storage.prefix}"\n` +
        `[storage.credentials]\naccess_key_id = "${o.storage.accessKeyId}"\nsecret_access_key = "${o.storage.secretAccessKey}"\n`;
  const configFile = join(o.dir, "server.toml");
  await writeFile(
    configFile,
    [
      `listen = "127.0.0.1:${port}"`,
      `spool-dir = ${JSON.stringify(join(o.dir, "spool"))}`,
      `[database]\nurl = ${JSON.stringify(o.databaseUrl)}`,
      storage,
      `[compression]\ntype = "zstd"`,
      `[garbage-collection]\ninterval = "0s"`,
      `[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(48).toString("base64")}"`,
      `[log]\nlevel = "warn"`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const env = { ...process.env };
  delete env.LARDER_SERVER_DATABASE_URL;
  delete env.LARDER_SERVER_TOKEN_HS256_SECRET_BASE64;
  const admin = async (args: string[]): Promise<string> => (await run(process.execPath, [BIN, ...args, "--config", configFile], { env, timeoutMs: 60_000 })).stdout;
  const nodeArgs = [...(o.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProfDir] : []), ...(o.nodeArgs ?? [])];
  const out = o.stdoutFile === undefined ? "ignore" : openSync(o.stdoutFile, "w");
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, BIN, "--config", configFile, "--mode", "api-server"], { env, stdio: ["ignore", out, "pipe"] });
  if (typeof out === "number") closeSync(out);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr = (stderr + s).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/`, 30_000, () => (child.exitCode !== null ? `larderd exited: ${stderr.trim()}` : undefined));
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  const pid = child.pid as number;
  return {
    url,
    pid,
    configFile,
    admin,
    memory: () => readMemory(pid),
    async stop() {
      if (child.exitCode !== null) return;
      // SIGTERM lets larderd close cleanly, which is also when Node writes the CPU profile.
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** VmRSS (now) and VmHWM (peak since start) of a process, in MiB. */
export function readMemory(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]);
  };
  return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

/** Samples a process's RSS every `everyMs` until stopped; returns the largest sample. */
export function sampleRss(pid: number, everyMs = 50): { stop(): number } {
  let peak = 0;
  const tick = () => {
    try {
      peak = Math.max(peak, readMemory(pid).rssMiB);
    } catch {
      // The process is gone; keep what was seen.
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return peak;
    },
  };
}

/** CPU time (user + system) a process has used so far, in seconds (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU time (user + system) of this process's children that have exited and been waited for:
 * a client run's whole CPU (nix and its helpers, larder push) is the difference around it.
 */
export function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}
