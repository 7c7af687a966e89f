/**
 * `larder deploy`: start, follow, pause, resume and roll back deployments (api/deploy-types.ts).
 * Progress goes to stderr: on a terminal the agent table is redrawn in place; anywhere else (CI
 * logs) one plain line per change, without control characters. Results go to stdout.
 */
import { readFile, stat } from "node:fs/promises";
import type { Writable } from "node:stream";
import { activateRequest, type ActivateRequest, type ActivationLog, type AgentStatus, type ClosureRefusal, type DeploymentSummary, type EnvironmentStatus } from "../api/deploy-types.ts";
import { describeZodError } from "../api/cache-config-types.ts";
import { Api, sleep } from "./api.ts";
import { CliError } from "./errors.ts";
import { resolveArg } from "./nix.ts";
import { LARDER } from "../util/invocation.ts";

/** Rollout flags as commander hands them over; only those given override a deploy.json. */
export interface RolloutFlags {
  group?: string;
  activation?: string;
  maxUnavailable?: string;
  canaries?: string;
  healthUrl?: string;
  healthCommand?: string;
  healthTimeout?: string;
  migration?: string;
  pauseOnFailure?: boolean;
  autoRollback?: boolean;
  agentTimeout?: string;
  supersede?: boolean;
  message?: string;
}

/** A command given on the command line: a JSON array of arguments, or words split at spaces. */
function argv(flag: string, v: string): string[] {
  if (v.trimStart().startsWith("[")) {
    try {
      const parsed = JSON.parse(v) as unknown;
      if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string")) return parsed;
    } catch {
      // fall through to the error below
    }
    throw new CliError(`${flag}: "${v}" is not a JSON array of strings`);
  }
  const words = v.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new CliError(`${flag} is empty`);
  return words;
}

function whole(flag: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new CliError(`${flag} must be a whole number (got "${v}")`);
  return Number(v);
}

/** `system`, `profile:/nix/var/nix/profiles/NAME` or `service:UNIT`. */
export function parseActivation(v: string): ActivateRequest["activation"] {
  if (v === "system") return { kind: "system" };
  if (v.startsWith("profile:")) return { kind: "profile", profile: v.slice("profile:".length) };
  if (v.startsWith("service:")) return { kind: "service", unit: v.slice("service:".length) };
  throw new CliError(`--activation "${v}": use system, profile:/ABSOLUTE/PROFILE or service:UNIT`);
}

/**
 * The activation request: from a deploy.json (the request body itself) or a store path, with
 * the flags given laid over it. Checked here with the server's own schema, so a typo fails
 * before anything is sent.
 */
export async function buildActivation(target: string, f: RolloutFlags): Promise<ActivateRequest> {
  let base: Record<string, unknown> = {};
  const isFile = target.endsWith(".json") && (await stat(target).then((s) => s.isFile(), () => false));
  if (isFile) {
    try {
      base = JSON.parse(await readFile(target, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new CliError(`${target}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof base !== "object" || base === null || Array.isArray(base)) throw new CliError(`${target}: expected a JSON object with "targets"`);
    if (f.group !== undefined) throw new CliError("--group applies to a store path; a deploy.json names its groups in \"targets\"");
  } else {
    const path = await resolveArg(target);
    base = { targets: { [f.group ?? "*"]: path } };
  }
  const rollout: Record<string, unknown> = { ...((base.rollout as Record<string, unknown> | undefined) ?? {}) };
  if (f.maxUnavailable !== undefined) rollout.maxUnavailable = /%$/.test(f.maxUnavailable) ? f.maxUnavailable : whole("--max-unavailable", f.maxUnavailable);
  if (f.canaries !== undefined) rollout.canaries = whole("--canaries", f.canaries);
  if (f.healthUrl !== undefined || f.healthCommand !== undefined) {
    const previous = (rollout.healthCheck as Record<string, unknown> | undefined) ?? {};
    const { url: _u, command: _c, ...rest } = previous;
    rollout.healthCheck = { ...rest, ...(f.healthUrl !== undefined && { url: f.healthUrl }), ...(f.healthCommand !== undefined && { command: argv("--health-command", f.healthCommand) }) };
  }
  if (f.healthTimeout !== undefined) {
    if (rollout.healthCheck === undefined) throw new CliError("--health-timeout needs a health check: --health-url or --health-command");
    rollout.healthCheck = { ...(rollout.healthCheck as object), timeoutSeconds: whole("--health-timeout", f.healthTimeout) };
  }
  if (f.migration !== undefined) rollout.migration = { command: argv("--migration", f.migration) };
  if (f.pauseOnFailure !== undefined) rollout.pauseOnFailure = f.pauseOnFailure;
  if (f.autoRollback !== undefined) rollout.autoRollback = f.autoRollback;
  if (f.agentTimeout !== undefined) rollout.agentTimeoutSeconds = whole("--agent-timeout", f.agentTimeout);
  const body = {
    ...base,
    rollout,
    ...(f.activation !== undefined && { activation: parseActivation(f.activation) }),
    ...(f.supersede !== undefined && { supersede: f.supersede }),
    ...(f.message !== undefined && { message: f.message }),
  };
  const parsed = activateRequest.safeParse(body);
  if (!parsed.success) throw new CliError(`invalid deployment${isFile ? ` in ${target}` : ""}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

function envPath(cache: string, env: string): string {
  return `_api/v1/deploy/${encodeURIComponent(cache)}/${encodeURIComponent(env)}`;
}

/** POST activate, with the 422 refusal's path lists spelled out. Not retried: it is not idempotent. */
export async function activate(api: Api, cache: string, env: string, body: ActivateRequest): Promise<EnvironmentStatus> {
  let res: Response;
  try {
    res = await fetch(api.url(`${envPath(cache, env)}/activate`), { method: "POST", headers: api.headers({ "content-type": "application/json" }), body: JSON.stringify(body) });
  } catch (e) {
    throw api.unreachable(e);
  }
  const text = await res.text();
  if (res.ok) return JSON.parse(text) as EnvironmentStatus;
  if (res.status === 422) {
    let r: Partial<ClosureRefusal> = {};
    try {
      r = JSON.parse(text) as ClosureRefusal;
    } catch {
      // fall through with what we have
    }
    const lines = [`deploying to "${env}" refused: ${r.message ?? text.slice(0, 200)}`];
    for (const p of r.missing ?? []) lines.push(`  missing:  ${p}`);
    for (const p of r.unsigned ?? []) lines.push(`  unsigned: ${p}`);
    if ((r.missing ?? []).length > 0) lines.push(`push the closure first: ${LARDER} push ${cache} ${Object.values(body.targets).map((t) => (typeof t === "string" ? t : t.storePath)).join(" ")}`);
    throw new CliError(lines.join("\n"));
  }
  throw api.refusal(res.status, text, `deploying to "${env}"`);
}

export async function status(api: Api, cache: string, env: string): Promise<EnvironmentStatus> {
  return (await api.json<EnvironmentStatus>("GET", envPath(cache, env), undefined, `reading environment "${env}"`)) as EnvironmentStatus;
}

export async function listEnvironments(api: Api, cache: string): Promise<EnvironmentStatus[]> {
  return (await api.json<{ environments: EnvironmentStatus[] }>("GET", `_api/v1/deploy/${encodeURIComponent(cache)}`, undefined, `listing the environments of cache "${cache}"`))?.environments ?? [];
}

export async function history(api: Api, cache: string, env: string, limit: number): Promise<DeploymentSummary[]> {
  return (await api.json<{ deployments: DeploymentSummary[] }>("GET", `${envPath(cache, env)}/history?limit=${limit}`, undefined, `reading the history of "${env}"`))?.deployments ?? [];
}

export async function logs(api: Api, cache: string, env: string, id: number, agent?: string): Promise<ActivationLog[]> {
  const q = agent === undefined ? "" : `?agent=${encodeURIComponent(agent)}`;
  return (await api.json<{ logs: ActivationLog[] }>("GET", `${envPath(cache, env)}/deployments/${id}/logs${q}`, undefined, `reading the logs of deployment ${id}`))?.logs ?? [];
}

export async function control(api: Api, cache: string, env: string, what: "pause" | "resume" | "rollback", body?: unknown): Promise<EnvironmentStatus> {
  // pause and resume are idempotent in effect; a rollback is not, so it is sent once.
  if (what === "rollback") {
    const res = await fetch(api.url(`${envPath(cache, env)}/rollback`), { method: "POST", headers: api.headers({ "content-type": "application/json" }), body: JSON.stringify(body ?? {}) }).catch((e: unknown) => {
      throw api.unreachable(e);
    });
    const text = await res.text();
    if (!res.ok) throw api.refusal(res.status, text, `rolling back "${env}"`);
    return JSON.parse(text) as EnvironmentStatus;
  }
  return (await api.json<EnvironmentStatus>("POST", `${envPath(cache, env)}/${what}`, undefined, `${what === "pause" ? "pausing" : "resuming"} "${env}"`)) as EnvironmentStatus;
}

const shortPath = (p: string | null): string => (p === null ? "-" : p.replace(/^\/nix\/store\/[0-9a-z]{32}-/, ""));

function counts(agents: AgentStatus[]): string {
  const by = new Map<string, number>();
  for (const a of agents) by.set(a.state, (by.get(a.state) ?? 0) + 1);
  return [...by].map(([s, n]) => `${n} ${s}`).join(", ") || "no agents yet";
}

/** The status as lines: the deployment, then one line per agent. */
export function describe(s: EnvironmentStatus): string[] {
  const d = s.current;
  const head = d
    ? `${s.cache}/${s.environment}: deployment ${d.id} ${d.state}${d.rollbackOf !== null ? ` (rollback to ${d.rollbackOf})` : ""}, migration ${d.migration}, by ${d.createdBy ?? "?"} at ${d.createdAt}${d.message ? ` — ${d.message}` : ""}`
    : `${s.cache}/${s.environment}: nothing deployed`;
  const lines = [head];
  if (d) for (const [group, path] of Object.entries(d.targets)) lines.push(`  target ${group === "*" ? "(all groups)" : group}: ${path}`);
  lines.push(`  agents: ${counts(s.agents)}`);
  const width = Math.max(5, ...s.agents.map((a) => a.name.length));
  for (const a of s.agents) {
    lines.push(`  ${a.name.padEnd(width)}  ${a.group.padEnd(10)} ${a.state.padEnd(12)} ${a.holdsSlot ? "slot " : "     "}${shortPath(a.currentPath)}${a.message ? `  (${a.message})` : ""}`);
  }
  return lines;
}

/** Follows a rollout; on a terminal redraws in place, elsewhere prints what changed. */
export class Follower {
  readonly #out: Writable;
  readonly #tty: boolean;
  #drawn = 0;
  #seen = new Map<string, string>();

  constructor(out: Writable, tty: boolean) {
    this.#out = out;
    this.#tty = tty;
  }

  show(s: EnvironmentStatus): void {
    if (this.#tty) {
      const lines = describe(s);
      const columns = (this.#out as { columns?: number }).columns ?? 120;
      // Up to the first line drawn, clear to the end of the screen, draw again.
      this.#out.write(`${this.#drawn > 0 ? `\x1b[${this.#drawn}F` : ""}\x1b[J${lines.map((l) => l.slice(0, columns - 1)).join("\n")}\n`);
      this.#drawn = lines.length;
      return;
    }
    const d = s.current;
    const changes: string[] = [];
    const note = (key: string, value: string, line: string) => {
      if (this.#seen.get(key) !== value) {
        this.#seen.set(key, value);
        changes.push(line);
      }
    };
    if (d) note("deployment", `${d.id} ${d.state} ${d.migration}`, `deployment ${d.id}: ${d.state} (migration ${d.migration})`);
    for (const a of s.agents) note(`agent ${a.name}`, `${a.state} ${a.currentPath} ${a.holdsSlot}`, `${a.name}: ${a.state}${a.holdsSlot ? " [slot]" : ""} ${shortPath(a.currentPath)}${a.message ? ` (${a.message})` : ""}`);
    for (const c of changes) this.#out.write(`${new Date().toISOString()} ${c}\n`);
  }
}

/** Exit statuses of --wait: 0 succeeded, 1 failed (or rolled back, or superseded), 2 paused. */
export function exitCodeFor(s: EnvironmentStatus): number | undefined {
  switch (s.current?.state) {
    case undefined:
      return 1;
    case "succeeded":
      return 0;
    case "paused":
      return 2;
    case "failed":
    case "rolled-back":
    case "superseded":
      return 1;
    default:
      return undefined;
  }
}

/** Polls the environment until deployment `id` ends (or pauses): its last status and the exit status. */
export async function follow(api: Api, cache: string, env: string, id: number, show: (s: EnvironmentStatus) => void, intervalMs = 1000): Promise<{ status: EnvironmentStatus; code: number; why: string }> {
  for (;;) {
    const s = await status(api, cache, env);
    show(s);
    const d = s.current;
    if (d === null || d.id !== id) return { status: s, code: 1, why: `deployment ${id} was replaced${d ? ` by deployment ${d.id}` : ""}` };
    const code = exitCodeFor(s);
    if (code !== undefined) {
      const why =
        d.state === "paused"
          ? `deployment ${id} paused; fix the cause, then ${LARDER} deploy resume ${cache} ${env} (or roll back)`
          : `deployment ${id} ${d.state}`;
      return { status: s, code, why };
    }
    await sleep(intervalMs);
  }
}
