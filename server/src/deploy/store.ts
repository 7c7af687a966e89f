/**
 * Deploy rows: environments, deployments, agents, activation logs, and the wire views of them
 * (api/deploy-types.ts). Every mutation of an environment's rollout runs under `lockEnvironment`,
 * which serialises it against every other api-server on the same database.
 */
import { sql, type Kysely, type Selectable } from "kysely";
import type { Db } from "../db/connect.ts";
import { ServerError } from "../errors.ts";
import type { Database, DeployAgentTable, DeploymentTable, DeployEnvironmentTable } from "../db/schema.ts";
import {
  rolloutSettings,
  type Activation,
  type ActivationLog,
  type AgentState,
  type AgentStatus,
  type DeploymentState,
  type DeploymentSummary,
  type RolloutSettings,
} from "../api/deploy-types.ts";

export type EnvRow = Selectable<DeployEnvironmentTable>;
export type DeploymentRow = Selectable<DeploymentTable>;
export type AgentRow = Selectable<DeployAgentTable>;
export type Trx = Kysely<Database>;

export interface Target {
  storePath: string;
  activation: Activation;
}

export interface Deployment {
  row: DeploymentRow;
  state: DeploymentState;
  /** Agent group (or "*") → target. Keys came from a request: a Map, never a plain object. */
  targets: Map<string, Target>;
  rollout: RolloutSettings;
  previous: string[];
}

/** States a rollout is still moving in. */
export const RUNNING: ReadonlySet<DeploymentState> = new Set(["prefetching", "rolling"]);
/** States after which the deployment never changes again (except for late agents joining). */
export const FINISHED: ReadonlySet<DeploymentState> = new Set(["succeeded", "failed", "rolled-back", "superseded"]);

/** The largest activation log kept per step: the tail is what says why a step failed. */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Log entries kept per agent and deployment (the oldest go first). */
export const LOGS_PER_AGENT = 50;
/** Deployments per environment whose logs are kept; older ones keep their history row only. */
export const DEPLOYMENTS_WITH_LOGS = 20;

export function parseDeployment(row: DeploymentRow): Deployment {
  const targets = new Map<string, Target>(Object.entries(JSON.parse(row.targets) as Record<string, Target>));
  return {
    row,
    state: row.state as DeploymentState,
    targets,
    rollout: rolloutSettings.parse(JSON.parse(row.rollout)),
    previous: JSON.parse(row.previous) as string[],
  };
}

export function targetFor(d: Deployment, group: string): Target | undefined {
  return d.targets.get(group) ?? d.targets.get("*");
}

export function targetsGroup(d: Deployment, group: string): boolean {
  return d.targets.has(group) || d.targets.has("*");
}

export async function findEnvironment(k: Trx, cacheId: number, name: string): Promise<EnvRow | undefined> {
  return k.selectFrom("deploy_environment").selectAll().where("cache_id", "=", cacheId).where("name", "=", name).executeTakeFirst();
}

/** The environment, made on first use (by an operator's activation or an agent's first poll). */
export async function ensureEnvironment(db: Db, cacheId: number, name: string, now = Date.now()): Promise<EnvRow> {
  const found = await findEnvironment(db.kysely, cacheId, name);
  if (found) return found;
  await db.kysely
    .insertInto("deploy_environment")
    .values({ cache_id: cacheId, name, generation: 0, current_deployment_id: null, created_at: now })
    .onConflict((oc) => oc.columns(["cache_id", "name"]).doNothing())
    .execute();
  return (await findEnvironment(db.kysely, cacheId, name)) as EnvRow;
}

/**
 * Runs `fn` in a transaction that holds the environment: a row lock on PostgreSQL (other
 * api-servers' slot grants and migrations for it wait), SQLite's single write lock taken up front.
 */
export async function lockEnvironment<T>(db: Db, envId: number, fn: (trx: Trx, env: EnvRow) => Promise<T>): Promise<T> {
  return db.kysely.transaction().execute(async (trx) => {
    let env: EnvRow | undefined;
    if (db.dialect === "postgres") {
      env = await trx.selectFrom("deploy_environment").selectAll().where("id", "=", envId).forUpdate().executeTakeFirst();
    } else {
      // A write first, so the transaction holds the write lock before it reads anything.
      await trx.updateTable("deploy_environment").set({ generation: sql`generation` }).where("id", "=", envId).execute();
      env = await trx.selectFrom("deploy_environment").selectAll().where("id", "=", envId).executeTakeFirst();
    }
    if (!env) throw new Error(`deploy environment ${envId} vanished`);
    return fn(trx, env);
  });
}

export async function bumpGeneration(trx: Trx, env: EnvRow): Promise<number> {
  const generation = env.generation + 1;
  await trx.updateTable("deploy_environment").set({ generation }).where("id", "=", env.id).execute();
  env.generation = generation;
  return generation;
}

export async function currentDeployment(k: Trx, env: EnvRow): Promise<Deployment | undefined> {
  if (env.current_deployment_id === null) return undefined;
  const row = await k.selectFrom("deployment").selectAll().where("id", "=", env.current_deployment_id).executeTakeFirst();
  return row ? parseDeployment(row) : undefined;
}

export async function environmentAgents(k: Trx, envId: number): Promise<AgentRow[]> {
  return k.selectFrom("deploy_agent").selectAll().where("environment_id", "=", envId).orderBy("name").execute();
}

export function tail(text: string): string {
  if (Buffer.byteLength(text) <= LOG_TAIL_BYTES) return text;
  const bytes = Buffer.from(text);
  return bytes.subarray(bytes.length - LOG_TAIL_BYTES).toString("utf8");
}

export async function appendLog(trx: Trx, deploymentId: number, agent: string, step: ActivationLog["step"], ok: boolean, log: string, now: number): Promise<void> {
  await trx.insertInto("deploy_log").values({ deployment_id: deploymentId, agent, step, ok: ok ? 1 : 0, log: tail(log), created_at: now }).execute();
  const old = await trx
    .selectFrom("deploy_log")
    .select("id")
    .where("deployment_id", "=", deploymentId)
    .where("agent", "=", agent)
    .orderBy("id", "desc")
    .offset(LOGS_PER_AGENT)
    .limit(1000)
    .execute();
  if (old.length > 0)
    await trx
      .deleteFrom("deploy_log")
      .where(
        "id",
        "in",
        old.map((r) => r.id),
      )
      .execute();
}

/** Drops the logs of all but the newest DEPLOYMENTS_WITH_LOGS deployments of an environment. */
export async function pruneLogs(trx: Trx, envId: number): Promise<void> {
  const cutoff = await trx.selectFrom("deployment").select("id").where("environment_id", "=", envId).orderBy("id", "desc").offset(DEPLOYMENTS_WITH_LOGS - 1).limit(1).executeTakeFirst();
  if (!cutoff) return;
  const old = trx.selectFrom("deployment").select("id").where("environment_id", "=", envId).where("id", "<", cutoff.id);
  await trx.deleteFrom("deploy_log").where("deployment_id", "in", old).execute();
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function summary(d: Deployment, envName: string): DeploymentSummary {
  const targets: Record<string, string> = {};
  // Keys are validated group names or "*" (api/deploy-types.ts); defined as own data properties.
  for (const [group, t] of d.targets) Object.defineProperty(targets, group, { value: t.storePath, enumerable: true, writable: true, configurable: true });
  return {
    id: d.row.id,
    environment: envName,
    state: d.state,
    targets,
    rollbackOf: d.row.rollback_of,
    message: d.row.message,
    createdBy: d.row.created_by,
    createdAt: new Date(d.row.created_at).toISOString(),
    finishedAt: iso(d.row.finished_at),
    migration: d.row.migration_state as DeploymentSummary["migration"],
  };
}

export function agentStatus(a: AgentRow): AgentStatus {
  return {
    name: a.name,
    group: a.group_name,
    state: a.state as AgentState,
    currentPath: a.current_path,
    deploymentId: a.deployment_id,
    lastSeenAt: new Date(a.last_seen_at).toISOString(),
    holdsSlot: a.slot_deployment_id !== null,
    message: a.message,
  };
}

/**
 * Records that an agent is alive (registering it on first contact) and returns its row. A name
 * belongs to one group: a token of another group cannot act as, or take over, that host.
 */
export async function touchAgent(k: Trx, envId: number, name: string, group: string, now: number): Promise<AgentRow> {
  let agent = await k.selectFrom("deploy_agent").selectAll().where("environment_id", "=", envId).where("name", "=", name).executeTakeFirst();
  if (!agent) {
    await k
      .insertInto("deploy_agent")
      .values({
        environment_id: envId,
        name,
        group_name: group,
        state: "idle",
        current_path: null,
        deployment_id: null,
        run_deployment_id: null,
        previous_path: null,
        slot_deployment_id: null,
        slot_granted_at: null,
        message: null,
        last_seen_at: now,
        created_at: now,
      })
      .onConflict((oc) => oc.columns(["environment_id", "name"]).doNothing())
      .execute();
    agent = await k.selectFrom("deploy_agent").selectAll().where("environment_id", "=", envId).where("name", "=", name).executeTakeFirstOrThrow();
  }
  if (agent.group_name !== group) {
    throw new ServerError("AccessError", `Access error: agent "${name}" belongs to group "${agent.group_name}"; this token acts for group "${group}".`);
  }
  await k.updateTable("deploy_agent").set({ last_seen_at: now }).where("id", "=", agent.id).execute();
  agent.last_seen_at = now;
  return agent;
}
