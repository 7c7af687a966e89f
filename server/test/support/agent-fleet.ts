/**
 * A fleet of real `larder agent` processes for the end-to-end deploy tests: each agent has its
 * own chroot store (it fetches closures from larderd like a host would), its own state dir, and
 * a `service` activation run by the process supervisor on its own port. Releases of the test
 * service are built by the real Nix 2.8 and pushed with `larder push`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import type { EnvironmentStatus } from "../../src/api/deploy-types.ts";
import { larderCli, LARDER_BIN } from "./client.ts";
import { freePort } from "./free-port.ts";
import { createNixEnv, type NixEnv } from "./nix.ts";
import { mint, operator } from "./deploy.ts";
import type { Larder } from "./larder.ts";
import { killGroupOf } from "./agent-processes.ts";

export const SERVICE_DIR = fileURLToPath(new URL("../fixtures/deploy-service/", import.meta.url));
export const RELEASES = ["v1", "v2", "v3", "v4", "v5"] as const;
export type Release = (typeof RELEASES)[number];

/** Builds every release of the test service into the Nix env's source store and pushes them to `cache`. */
export async function buildAndPushReleases(nix: NixEnv, serverUrl: string, pushToken: string, cache: string, nonce: string): Promise<Map<Release, string>> {
  const dir = join(nix.dir.path, "service");
  await mkdir(dir, { recursive: true });
  for (const f of ["service.nix", "serve.js", "check.js", "migrate.sh"]) await copyFile(join(SERVICE_DIR, f), join(dir, f));
  const out = await nix.nix(["nix-build", "--store", nix.src, join(dir, "service.nix"), "--argstr", "nonce", nonce, ...RELEASES.flatMap((r) => ["-A", r]), "--no-out-link"]);
  const paths = out.trim().split("\n");
  if (paths.length !== RELEASES.length) throw new Error(`expected ${RELEASES.length} releases, got:\n${out}`);
  const larder = larderCli(nix.env);
  const login = await larder(["login", "ci", `${serverUrl}/`, pushToken]);
  if (login.code !== 0) throw new Error(login.stderr);
  const push = await larder(["push", cache, "--store", nix.src, ...paths]);
  if (push.code !== 0) throw new Error(`larder push: ${push.stderr}`);
  return new Map(RELEASES.map((r, i) => [r, paths[i] as string]));
}

export interface AgentProcess {
  name: string;
  port: number;
  stateDir: string;
  /** The server URL it talks to. */
  url: string;
  child: ChildProcess;
  logFile: string;
  /** Starts it again (same name, store and state dir) after it stopped or was killed. */
  restart(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface FleetOptions {
  nix: NixEnv;
  cache: string;
  environment: string;
  tokenFile: string;
  migrationLog: string;
}

export async function startAgent(o: FleetOptions, name: string, url: string): Promise<AgentProcess> {
  const root = join(o.nix.dir.path, "agents", name);
  const stateDir = join(root, "state");
  const store = join(root, "store");
  const logFile = join(root, "agent.log");
  await mkdir(stateDir, { recursive: true });
  const port = await freePort();
  const args = [
    LARDER_BIN, "agent", o.cache, o.environment,
    "--endpoint", `${url}/`,
    "--token-file", o.tokenFile,
    "--name", name,
    "--state-dir", stateDir,
    "--store", store,
    "--supervisor", "process",
    "--allow", "service",
    "--service-env", `PORT=${port}`,
    "--service-env", `AGENT_NAME=${name}`,
    "--service-env", `MIGRATION_LOG=${o.migrationLog}`,
    "--service-env", `PATH=${dirname(process.execPath)}:/usr/bin:/bin`,
  ];
  const env = { ...o.nix.env, XDG_CACHE_HOME: join(root, "cache") };
  const agent: AgentProcess = {
    name,
    port,
    stateDir,
    url,
    logFile,
    child: undefined as unknown as ChildProcess,
    async restart() {
      const log = createWriteStream(logFile, { flags: "a" });
      await new Promise((r) => log.once("open", r));
      agent.child = spawn(process.execPath, args, { env, stdio: ["ignore", log, log] });
    },
    async kill(signal = "SIGTERM") {
      const c = agent.child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill(signal);
      });
    },
  };
  await agent.restart();
  return agent;
}

/** Stops every agent and the services they started (which outlive an agent, as units do). */
export async function stopFleet(agents: AgentProcess[]): Promise<void> {
  await Promise.all(agents.map((a) => a.kill("SIGTERM")));
  for (const a of agents) await killGroupOf(join(a.stateDir, "services"));
}

export async function agentLogs(agents: AgentProcess[]): Promise<string> {
  const parts = await Promise.all(agents.map(async (a) => `--- ${a.name}\n${await readFile(a.logFile, "utf8").catch(() => "")}`));
  return parts.join("\n");
}

/**
 * Fetches every agent's service /health every `everyMs` and keeps, per sample, which were
 * out of service and which version each answered: the ground truth for "at most N unavailable".
 */
export class ServiceSampler {
  samples: { down: string[]; versions: Map<string, string> }[] = [];
  private stopped = false;
  private loop: Promise<void>;

  constructor(agents: AgentProcess[], everyMs = 50) {
    this.loop = (async () => {
      while (!this.stopped) {
        const seen = await Promise.all(
          agents.map(async (a) => {
            try {
              const res = await fetch(`http://127.0.0.1:${a.port}/health`, { signal: AbortSignal.timeout(1000) });
              return { name: a.name, ok: res.status === 200, version: (await res.text()).trim() };
            } catch {
              return { name: a.name, ok: false, version: "" };
            }
          }),
        );
        this.samples.push({ down: seen.filter((s) => !s.ok).map((s) => s.name), versions: new Map(seen.map((s) => [s.name, s.version])) });
        await sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  mostDown(): number {
    return Math.max(0, ...this.samples.map((s) => s.down.length));
  }

  /** Every version an agent's service answered with while sampled. */
  versionsOf(name: string): Set<string> {
    return new Set(this.samples.map((s) => s.versions.get(name) ?? "").filter(Boolean));
  }
}

/** Polls the environment's status until `done` holds (or throws with the agents' logs). */
export async function waitForStatus(status: () => Promise<{ status: number; body: EnvironmentStatus }>, done: (s: EnvironmentStatus) => boolean, agents: AgentProcess[], timeoutMs = 60_000): Promise<EnvironmentStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: EnvironmentStatus | undefined;
  while (Date.now() < deadline) {
    const r = await status();
    if (r.status === 200) {
      last = r.body;
      if (done(last)) return last;
    }
    await sleep(100);
  }
  throw new Error(`timed out; last status: ${JSON.stringify(last, null, 2)}\n${await agentLogs(agents)}`);
}

/** What the agent's service answers on /health now ("" when it does not answer). */
export async function serviceVersion(a: AgentProcess): Promise<string> {
  try {
    return (await (await fetch(`http://127.0.0.1:${a.port}/health`, { signal: AbortSignal.timeout(1000) })).text()).trim();
  } catch {
    return "";
  }
}

export async function waitUntil(done: () => Promise<boolean>, agents: AgentProcess[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await done()) return;
    await sleep(100);
  }
  throw new Error(`timed out\n${await agentLogs(agents)}`);
}

export async function writeTokenFile(path: string, token: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${token}\n`, { mode: 0o600 });
}

/** User-facing rollout settings, short enough for a test: a 10 s lease, 1 s between checks. */
export const TEST_ROLLOUT = {
  maxUnavailable: 1,
  healthCheck: { command: ["bin/check"], timeoutSeconds: 15, intervalSeconds: 1 },
  agentTimeoutSeconds: 10,
};

export interface Fleet {
  nix: NixEnv;
  releases: Map<Release, string>;
  agents: AgentProcess[];
  op: ReturnType<typeof operator>;
  /** `larder` as an operator runs it, logged in as server "ops" with a deploy token. */
  larder: ReturnType<typeof larderCli>;
  path(r: Release): string;
  status(): Promise<{ status: number; body: EnvironmentStatus }>;
  /** Activates release `r` as a `service` of unit "web" with TEST_ROLLOUT (plus `rollout` overrides); returns the deployment id. */
  activate(r: Release, extra?: { rollout?: Record<string, unknown>; supersede?: boolean }): Promise<number>;
  /** The lines of the shared migration log ("<version> <agent>"). */
  migrations(): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Builds and pushes the releases to `cache` on `l`, starts one agent per URL in `agentUrls`
 * (named web-1…), and rolls out v1 to all of them.
 */
export async function startFleet(l: Larder, cache: string, environment: string, agentUrls: string[], operatorUrl = l.url): Promise<Fleet> {
  const nix = await createNixEnv();
  const pushToken = await l.token({ push: [cache], pull: [cache] }, "ci");
  const releases = await buildAndPushReleases(nix, l.url, pushToken, cache, randomBytes(4).toString("hex"));
  const deployToken = await mint(l, { deploy: [cache] }, undefined, "ci");
  const op = operator(operatorUrl, deployToken, cache, environment);
  const larder = larderCli(nix.env);
  const login = await larder(["login", "ops", `${operatorUrl}/`, deployToken]);
  if (login.code !== 0) throw new Error(login.stderr);
  const tokenFile = join(nix.dir.path, "agent.token");
  // An agent token of group "web", which may also pull the (private) cache's closures.
  await writeTokenFile(tokenFile, await mint(l, { agent: [cache], pull: [cache] }, "web", "web-hosts"));
  const migrationLog = join(nix.dir.path, "migrations.log");
  await writeFile(migrationLog, "");
  const o = { nix, cache, environment, tokenFile, migrationLog };
  const agents = await Promise.all(agentUrls.map((url, i) => startAgent(o, `web-${i + 1}`, url)));
  const path = (r: Release) => releases.get(r) as string;
  const fleet: Fleet = {
    nix,
    releases,
    agents,
    op,
    larder,
    path,
    status: () => op.status(),
    async activate(r, extra = {}) {
      const res = await op.activate({
        targets: { "*": { storePath: path(r), activation: { kind: "service", unit: "web" } } },
        rollout: { ...TEST_ROLLOUT, ...extra.rollout },
        ...(extra.supersede !== undefined && { supersede: extra.supersede }),
        message: `release ${r}`,
      });
      if (res.status !== 200) throw new Error(`activate ${r}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.current!.id;
    },
    async migrations() {
      return (await readFile(migrationLog, "utf8").catch(() => "")).split("\n").filter(Boolean);
    },
    async stop() {
      await stopFleet(agents);
      await nix.cleanup();
    },
  };
  const id = await fleet.activate("v1");
  await waitForStatus(fleet.status, settled(id), agents, 90_000);
  return fleet;
}

export const settled = (id: number, state = "succeeded") => (s: EnvironmentStatus) => s.current?.id === id && s.current.state === state;
