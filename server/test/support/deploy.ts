/** Deploy API helpers for tests: store paths pushed through attic's upload-path, tokens, calls. */
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startDaemon, type Daemon } from "./daemon.ts";
import { buildClaims, signClaims } from "../../src/auth/tokens.ts";
import type { PermissionName } from "../../src/auth/permissions.ts";
import { encodeNixBase32 } from "../../src/nix/base32.ts";
import type { AgentDesired, EnvironmentStatus, SlotGrant } from "../../src/api/deploy-types.ts";
import type { Larder } from "./larder.ts";
import { narOfFile } from "./nar.ts";

/** A made-up store path with these references (base names), pushed to `cache`; returns its path. */
export async function pushPath(l: Larder, cache: string, name: string, refs: string[] = []): Promise<string> {
  const hash = encodeNixBase32(randomBytes(20));
  const storePath = `/nix/store/${hash}-${name}`;
  const nar = narOfFile(Buffer.from(`${name} ${randomBytes(8).toString("hex")}\n`));
  const references = [...refs].sort();
  const meta = {
    cache,
    store_path_hash: hash,
    store_path: storePath,
    references,
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: `sha256:${createHash("sha256").update(nar).digest("hex")}`,
    nar_size: nar.length,
  };
  const res = await fetch(`${l.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers: { authorization: `bearer ${l.rootToken}`, "x-attic-nar-info": JSON.stringify(meta) },
    body: nar,
  });
  if (res.status !== 200) throw new Error(`upload ${storePath}: ${res.status} ${await res.text()}`);
  return storePath;
}

export const baseName = (p: string): string => p.slice("/nix/store/".length);

export async function mint(l: Larder, grants: Partial<Record<PermissionName, string[]>>, agentGroup?: string, sub = "test"): Promise<string> {
  return signClaims(l.server.ctx.tokens, buildClaims({ sub, validitySeconds: 3600, grants, ...(agentGroup !== undefined && { agentGroup }) }));
}

export interface Reply<T> {
  status: number;
  body: T;
}

export async function call<T = any>(url: string, token: string, method: string, path: string, body?: unknown): Promise<Reply<T>> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === "" ? undefined : JSON.parse(text)) as T };
}

/** One agent, talking to one server's URL (which may change, as behind a load balancer). */
export class TestAgent {
  url: string;
  readonly token: string;
  readonly cache: string;
  readonly env: string;
  readonly name: string;
  constructor(url: string, token: string, cache: string, env: string, name: string) {
    this.url = url;
    this.token = token;
    this.cache = cache;
    this.env = env;
    this.name = name;
  }

  private path(what: string): string {
    return `/_api/v1/agent/${this.cache}/${this.env}/${what}`;
  }

  desired(after = -1, wait = 0): Promise<Reply<AgentDesired>> {
    return call<AgentDesired>(this.url, this.token, "GET", `${this.path("desired")}?agent=${this.name}&after=${after}&wait=${wait}`);
  }

  report(deploymentId: number | null, state: string, currentPath: string | null, extra: { message?: string; log?: string } = {}): Promise<Reply<{ generation: number }>> {
    return call(this.url, this.token, "POST", this.path("report"), { agent: this.name, deploymentId, state, currentPath, ...extra });
  }

  slot(deploymentId: number): Promise<Reply<SlotGrant>> {
    return call<SlotGrant>(this.url, this.token, "POST", this.path("slot"), { agent: this.name, deploymentId });
  }

  migration(deploymentId: number, ok: boolean, log?: string): Promise<Reply<{ generation: number }>> {
    return call(this.url, this.token, "POST", this.path("migration"), { agent: this.name, deploymentId, ok, ...(log !== undefined && { log }) });
  }
}

export function operator(url: string, token: string, cache: string, env: string) {
  const base = `/_api/v1/deploy/${cache}/${env}`;
  return {
    activate: (body: unknown) => call<EnvironmentStatus>(url, token, "POST", `${base}/activate`, body),
    status: () => call<EnvironmentStatus>(url, token, "GET", base),
    history: () => call<{ deployments: any[] }>(url, token, "GET", `${base}/history`),
    logs: (id: number, agent?: string) => call<{ logs: any[] }>(url, token, "GET", `${base}/deployments/${id}/logs${agent ? `?agent=${agent}` : ""}`),
    pause: () => call<EnvironmentStatus>(url, token, "POST", `${base}/pause`),
    resume: () => call<EnvironmentStatus>(url, token, "POST", `${base}/resume`),
    rollback: (body: unknown = {}) => call<EnvironmentStatus>(url, token, "POST", `${base}/rollback`, body),
  };
}

/** `n` larderd api-server processes on the config of `l` (its PostgreSQL and S3), as in scale-out. */
export async function startApiServers(l: Larder, n: number): Promise<Daemon[]> {
  const configFile = join(l.dir.path, "api-server.toml");
  // startDaemon waits for the "listening" log line, which the tests' silent level would swallow.
  await writeFile(configFile, l.toml.replace('level = "silent"', 'level = "info"'));
  return Promise.all(Array.from({ length: n }, () => startDaemon(configFile, "api-server")));
}
