/**
 * The agent's side of the deploy wire contract (api/deploy-types.ts). The token is read from its
 * file on every request, so a rotated token is picked up without a restart. Network errors and
 * 5xx/429 answers are `TransientError`s the loop retries with backoff; other refusals are
 * `AgentRefused` (a revoked token, a bad request) with what the server said.
 */
import { readFile } from "node:fs/promises";
import type { AgentAck, AgentDesired, AgentReport, MigrationReport, SlotGrant } from "../../api/deploy-types.ts";
import { Api, backoffMs, TransientError } from "../api.ts";
import type { ResolvedServer } from "../config.ts";

export class AgentRefused extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface AgentServer {
  endpoint: string;
  name: string;
  /** A token file (read on each request), or a token from the client config. */
  tokenFile?: string;
  token?: string;
}

/** Waits between failed attempts: exponential from 1 s with ±25% jitter, at most `capMs`. */
export function retryDelayMs(attempt: number, capMs = 30_000): number {
  return Math.min(capMs, backoffMs({ attempts: Infinity, baseDelayMs: 1000 }, Math.min(attempt, 16)));
}

export class AgentApi {
  readonly server: AgentServer;
  readonly cache: string;
  readonly environment: string;
  readonly agent: string;
  constructor(server: AgentServer, cache: string, environment: string, agent: string) {
    this.server = server;
    this.cache = cache;
    this.environment = environment;
    this.agent = agent;
  }

  async token(): Promise<string | undefined> {
    if (this.server.tokenFile === undefined) return this.server.token;
    try {
      return (await readFile(this.server.tokenFile, "utf8")).trim();
    } catch (e) {
      throw new AgentRefused(0, `cannot read the token file ${this.server.tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  private async request<T>(method: string, what: string, path: string, body: unknown, timeoutMs: number, stop?: AbortSignal): Promise<T> {
    const resolved: ResolvedServer = { name: this.server.name, endpoint: this.server.endpoint, token: await this.token() };
    const api = new Api(resolved);
    api.context = `cache "${this.cache}"`;
    let res: Response;
    try {
      res = await fetch(api.url(`_api/v1/agent/${this.cache}/${this.environment}/${path}`), {
        method,
        headers: api.headers(body === undefined ? {} : { "content-type": "application/json" }),
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: stop ? AbortSignal.any([AbortSignal.timeout(timeoutMs), stop]) : AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new TransientError(api.unreachable(e).message);
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as T;
    const err = api.refusal(res.status, text, what);
    if (err instanceof TransientError) throw err;
    throw new AgentRefused(res.status, err.message);
  }

  /** The long poll: answers when the environment's generation passes `after`, or after `waitSeconds`. */
  desired(after: number, waitSeconds: number, stop?: AbortSignal): Promise<AgentDesired> {
    const q = new URLSearchParams({ agent: this.agent, after: String(after), wait: String(waitSeconds) });
    return this.request("GET", "polling for the desired state", `desired?${q}`, undefined, (waitSeconds + 30) * 1000, stop);
  }

  report(r: Omit<AgentReport, "agent">): Promise<AgentAck> {
    return this.request("POST", `reporting ${r.state}`, "report", { agent: this.agent, ...r }, 30_000);
  }

  slot(deploymentId: number): Promise<SlotGrant> {
    return this.request("POST", "asking for a rollout slot", "slot", { agent: this.agent, deploymentId }, 30_000);
  }

  migration(r: Omit<MigrationReport, "agent">): Promise<AgentAck> {
    return this.request("POST", "reporting the migration", "migration", { agent: this.agent, ...r }, 30_000);
  }
}
