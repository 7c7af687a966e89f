/** larderd as a separate process, the way it runs in production. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
export { freePort } from "./free-port.ts";
import { freePort } from "./free-port.ts";

export const LARDERD_BIN = fileURLToPath(new URL("../../bin/larderd.js", import.meta.url));


export interface Daemon {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `larderd --config FILE --mode MODE --listen 127.0.0.1:PORT` and waits until it listens. */
export async function startDaemon(configFile: string, mode: string, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const port = await freePort();
  const child = spawn(process.execPath, [LARDERD_BIN, "--config", configFile, "--mode", mode, "--listen", `127.0.0.1:${port}`], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`larderd --mode ${mode} did not start:\n${out}`)), 30_000);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`larderd --mode ${mode} exited with ${code}:\n${out}`));
    };
    child.once("exit", onExit);
    const poll = setInterval(() => {
      if (out.includes("larderd listening")) {
        clearInterval(poll);
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve();
      }
    }, 50);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs larderd to completion (one-shot modes and admin commands). */
export function runLarderd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LARDERD_BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
