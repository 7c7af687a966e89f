/**
 * The health check after a switch: a command (run from the release, with the service's
 * environment) or a URL fetched from this host, repeated every interval until one attempt passes
 * or the timeout is spent. Without a configured check a service must at least still be running.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Activation, HealthCheck } from "../../api/deploy-types.ts";
import type { Activator } from "./activation.ts";
import { runCommand, Tail } from "./run.ts";

/** How long a service must stay up when no check is configured. */
const SERVICE_SETTLE_MS = 1000;

export async function healthCheck(check: HealthCheck | null, a: Activation, path: string, act: Activator): Promise<{ ok: boolean; output: string }> {
  if (check === null) {
    if (a.kind !== "service") return { ok: true, output: "no health check configured\n" };
    await sleep(SERVICE_SETTLE_MS);
    const up = await act.supervisor.running(a.unit);
    return { ok: up, output: up ? `no health check configured; ${a.unit} is running\n` : `no health check configured, and ${a.unit} is not running\n` };
  }
  const log = new Tail();
  const deadline = Date.now() + check.timeoutSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    const left = deadline - Date.now();
    const r = check.command !== undefined ? await runCheckCommand(check.command, path, act, left) : await fetchCheck(check.url as string, left);
    log.push(`[attempt ${attempt}] ${r.output}${r.output.endsWith("\n") ? "" : "\n"}`);
    if (r.ok) return { ok: true, output: log.text() };
    if (Date.now() + check.intervalSeconds * 1000 >= deadline) {
      log.push(`health check failed: no attempt passed within ${check.timeoutSeconds}s\n`);
      return { ok: false, output: log.text() };
    }
    await sleep(check.intervalSeconds * 1000);
  }
}

async function runCheckCommand(argv: string[], path: string, act: Activator, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  const real = act.store.real(path);
  return runCommand(act.resolveCommand(argv, path), { env: act.commandEnv(path), cwd: real, timeoutMs: Math.max(1000, timeoutMs) });
}

async function fetchCheck(url: string, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(1000, timeoutMs)), redirect: "manual" });
    const body = (await res.text()).slice(0, 2000);
    return { ok: res.status >= 200 && res.status < 300, output: `GET ${url}: ${res.status}${body ? ` ${body}` : ""}` };
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    return { ok: false, output: `GET ${url}: ${cause ?? (e as Error).message}` };
  }
}
