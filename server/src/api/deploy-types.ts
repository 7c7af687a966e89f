/**
 * larder deploy: the wire contract between larderd, `larder deploy` (operators, CI) and
 * `larder agent` (hosts). JSON over plain HTTP(S); agents only ever make outgoing requests, so a
 * host needs no inbound port. Request bodies are validated with these schemas at the edge;
 * unknown fields are rejected (a typo in a rollout setting must not silently mean "default").
 *
 * Operators (token permission `deploy`, claim key "dp", on the cache; status/history also with
 * `pull`):
 *   POST /_api/v1/deploy/{cache}/{env}/activate       ActivateRequest → 200 EnvironmentStatus
 *        422 ClosureRefusal when the target's closure is not wholly in the cache and signed;
 *        409 when a rollout is running and `supersede` is not set
 *   GET  /_api/v1/deploy/{cache}                      → { environments: EnvironmentStatus[] }
 *   GET  /_api/v1/deploy/{cache}/{env}                → EnvironmentStatus
 *   GET  /_api/v1/deploy/{cache}/{env}/history?limit= → { deployments: DeploymentSummary[] } newest first
 *   GET  /_api/v1/deploy/{cache}/{env}/deployments/{id}/logs?agent= → { logs: ActivationLog[] }
 *   POST /_api/v1/deploy/{cache}/{env}/rollback       RollbackRequest → EnvironmentStatus (a new
 *        deployment whose targets are an earlier one's; the history says it is a rollback)
 *   POST /_api/v1/deploy/{cache}/{env}/pause          → EnvironmentStatus
 *   POST /_api/v1/deploy/{cache}/{env}/resume         → EnvironmentStatus
 *
 * Agents (token permission `agent`, claim key "ag", on the cache, plus the agent group in the
 * claim AGENT_GROUP_CLAIM: one token per group, so a host can only ever act as its own group):
 *   GET  /_api/v1/agent/{cache}/{env}/desired?agent={name}&after={generation}&wait={seconds ≤ 60}
 *        → AgentDesired. Long poll: answers at once when the environment's generation is above
 *        `after`, else when it changes or `wait` runs out (then with the same generation).
 *   POST /_api/v1/agent/{cache}/{env}/report          AgentReport → AgentAck (also the heartbeat)
 *   POST /_api/v1/agent/{cache}/{env}/slot            SlotRequest → SlotGrant
 *   POST /_api/v1/agent/{cache}/{env}/migration       MigrationReport → AgentAck
 *
 * Errors use the server's usual `{code, error, message}` body.
 *
 * An agent's turn, as the server (server/src/deploy/rollout.ts) expects it:
 *   1. poll `desired`; a deployment in state "prefetching" or "rolling" whose target differs
 *      from what the agent runs: fetch the closure, report `prefetched` (with deploymentId).
 *      An agent already running its target reports `healthy` on it and is done.
 *   2. ask for a `slot` until granted (every live agent must have prefetched first; then
 *      maxUnavailable, canaries, and the migration gate apply). Asking again while holding it is
 *      harmless and answers the same (`runMigration` again while the migration is still its own).
 *   3. with `runMigration`: run it, post `migration` {ok}; a failure ends the turn.
 *   4. report `activating`, switch, `checking`, then `healthy` on the target (frees the slot), or
 *      `failed` (frees the slot; the deployment pauses, rolls back or carries on per settings),
 *      then `rolling-back` / `rolled-back` on `previous`. Report at least every leaseSeconds
 *      while holding a slot, or lose it (state `lost`).
 *   A deployment in state "rolled-back" (autoRollback) means: every agent that switched to the
 *   target returns to its `previous`. "paused": finish the current step, ask for no slot.
 *   Agents silent longer than agentTimeoutSeconds count neither for the prefetch barrier nor
 *   for success; they follow the current deployment whenever they come back.
 */
import { z } from "zod";

/** The top-level JWT claim naming an agent token's group (the cache pattern grants "ag"). */
export const AGENT_GROUP_CLAIM = "https://larder.invalid/agent-group";

export const ENVIRONMENT_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,49}$/;
export const AGENT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Agent group names; "*" in `targets` means every group without an entry of its own. */
export const AGENT_GROUP_RE = /^[a-z0-9][a-z0-9_-]{0,49}$/;

/** What an agent does with a store path once its closure is local. */
export const activation = z.discriminatedUnion("kind", [
  /** A NixOS system: `nix-env -p /nix/var/nix/profiles/system --set <path>`, then `<path>/bin/switch-to-configuration switch`. */
  z.strictObject({ kind: z.literal("system") }),
  /** A profile: `nix-env -p <profile> --set <path>`. */
  z.strictObject({ kind: z.literal("profile"), profile: z.string().regex(/^\/[^\0]*$/, "must be an absolute path") }),
  /**
   * A service closure (nixfra's convention: `bin/serve`, optional `bin/migrate`) run by a systemd
   * unit the agent manages, named `larder-service-<unit>`.
   */
  z.strictObject({ kind: z.literal("service"), unit: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,49}$/) }),
]);
export type Activation = z.infer<typeof activation>;

/** A command as an argument vector; a relative first element runs from the target store path. */
const argv = z.array(z.string().min(1)).min(1).max(64);

export const healthCheck = z
  .strictObject({
    command: argv.optional(),
    /** Fetched from the agent's host; any 2xx passes. */
    url: z.url({ protocol: /^https?$/ }).optional(),
    timeoutSeconds: z.number().int().min(1).max(3600).default(60),
    /** Checks repeat until one passes or the timeout is spent. */
    intervalSeconds: z.number().int().min(1).max(600).default(2),
  })
  .refine((h) => (h.command === undefined) !== (h.url === undefined), "give exactly one of command or url");
export type HealthCheck = z.infer<typeof healthCheck>;

export const rolloutSettings = z.strictObject({
  /** Agents of the environment allowed out of service at once: a count, or a percentage such as "25%" (rounded down, at least 1). */
  maxUnavailable: z.union([z.number().int().min(1), z.string().regex(/^([1-9][0-9]?|100)%$/)]).default(1),
  /** Agents that must activate and pass their health check before any other agent gets a slot. */
  canaries: z.number().int().min(0).default(0),
  healthCheck: healthCheck.optional(),
  /** Run once per deployment, by the first agent granted a slot, before it activates. For `service` activations `bin/migrate` is the default when present. */
  migration: z.strictObject({ command: argv }).optional(),
  /** On a failed agent: stop handing out slots (true), or carry on with the others (false). */
  pauseOnFailure: z.boolean().default(true),
  /** On a failed agent: also move every agent already switched back to the previous path. */
  autoRollback: z.boolean().default(false),
  /** An agent silent this long while holding a slot loses it (and counts as failed). */
  agentTimeoutSeconds: z.number().int().min(10).max(86_400).default(300),
});
export type RolloutSettings = z.infer<typeof rolloutSettings>;

export const deployTarget = z.union([
  z.string(),
  z.strictObject({ storePath: z.string(), activation: activation.optional() }),
]);

export const activateRequest = z.strictObject({
  /** Agent group (or "*") → store path. Keys come from the request: handlers copy them into a Map. */
  targets: z.record(z.string().regex(/^(\*|[a-z0-9][a-z0-9_-]{0,49})$/, 'must be an agent group name or "*"'), deployTarget).refine((t) => Object.keys(t).length > 0, 'name at least one target: an agent group (a-z 0-9 _ -, first a letter or digit) or "*" mapped to a store path'),
  /** Default activation for targets that name none; `{kind: "system"}` when absent. */
  activation: activation.optional(),
  rollout: rolloutSettings.prefault({}),
  /** Replace a rollout that is still running (its agents finish their current step first). */
  supersede: z.boolean().default(false),
  /** Free text for the history (commit, CI run URL). */
  message: z.string().max(1000).optional(),
});
export type ActivateRequest = z.infer<typeof activateRequest>;

export const rollbackRequest = z.strictObject({
  /** The deployment whose targets to return to; the one before the current when absent. */
  to: z.number().int().positive().optional(),
  message: z.string().max(1000).optional(),
});

/** 422 body extra fields: what keeps the target from being deployed. */
export interface ClosureRefusal {
  code: string;
  error: string;
  message: string;
  /** Store paths of the closure that are not in the cache. */
  missing: string[];
  /** Store paths in the cache without a valid signature by the cache's key. */
  unsigned: string[];
}

export type DeploymentState = "prefetching" | "rolling" | "paused" | "succeeded" | "failed" | "rolled-back" | "superseded";

export type AgentState =
  | "idle"
  | "prefetching"
  | "prefetched"
  | "waiting"
  | "migrating"
  | "activating"
  | "checking"
  | "healthy"
  | "failed"
  | "rolling-back"
  | "rolled-back"
  | "lost";

export interface DeploymentSummary {
  id: number;
  environment: string;
  state: DeploymentState;
  /** Agent group (or "*") → store path. */
  targets: Record<string, string>;
  /** The deployment this one returns to, when it is a rollback. */
  rollbackOf: number | null;
  message: string | null;
  createdBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  migration: "none" | "pending" | "running" | "succeeded" | "failed";
}

export interface AgentStatus {
  name: string;
  group: string;
  state: AgentState;
  /** What the agent last reported running. */
  currentPath: string | null;
  deploymentId: number | null;
  lastSeenAt: string;
  holdsSlot: boolean;
  message: string | null;
}

export interface EnvironmentStatus {
  cache: string;
  environment: string;
  /** Increases on every change an agent must act on (new deployment, pause, resume, rollback). */
  generation: number;
  current: (DeploymentSummary & { rollout: RolloutSettings }) | null;
  agents: AgentStatus[];
}

export interface AgentDesired {
  generation: number;
  /** null: nothing deployed to this agent's group; the agent keeps what it runs. */
  deployment: null | {
    id: number;
    state: DeploymentState;
    target: string;
    /** The path to return to on failure (pinned like the target). */
    previous: string | null;
    activation: Activation;
    healthCheck: HealthCheck | null;
    migration: { command: string[] } | null;
    agentTimeoutSeconds: number;
  };
  /** What a host needs to fetch the closure: the cache's binary-cache URL and its public key. */
  substituter: { url: string; publicKey: string };
}

export const agentReport = z.strictObject({
  agent: z.string().regex(AGENT_NAME_RE),
  deploymentId: z.number().int().positive().nullable(),
  state: z.enum(["idle", "prefetching", "prefetched", "waiting", "migrating", "activating", "checking", "healthy", "failed", "rolling-back", "rolled-back"]),
  currentPath: z.string().max(1024).nullable(),
  message: z.string().max(4000).optional(),
  /** Output of the step that just ended (activation, health check); the server keeps the tail. */
  log: z.string().max(1_048_576).optional(),
});
export type AgentReport = z.infer<typeof agentReport>;

export interface AgentAck {
  generation: number;
}

export const slotRequest = z.strictObject({
  agent: z.string().regex(AGENT_NAME_RE),
  deploymentId: z.number().int().positive(),
});
export type SlotRequest = z.infer<typeof slotRequest>;

export interface SlotGrant {
  granted: boolean;
  /** This agent must run the deployment's migration (once per deployment) before activating. */
  runMigration: boolean;
  /** When not granted: ask again after this long. */
  retryAfterSeconds: number;
  /** Report at least this often while holding the slot, or lose it. */
  leaseSeconds: number;
  reason: string | null;
}

export const migrationReport = z.strictObject({
  agent: z.string().regex(AGENT_NAME_RE),
  deploymentId: z.number().int().positive(),
  ok: z.boolean(),
  log: z.string().max(1_048_576).optional(),
});
export type MigrationReport = z.infer<typeof migrationReport>;

export interface ActivationLog {
  agent: string;
  step: "migration" | "activation" | "health-check" | "rollback";
  ok: boolean;
  at: string;
  log: string;
}
