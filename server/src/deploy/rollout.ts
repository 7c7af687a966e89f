/**
 * The rollout state machine. Every function here runs inside `lockEnvironment`, so whichever
 * api-server an agent talks to, slot grants, the one migration and state changes of one
 * environment happen one at a time, each on the rows as the last one left them.
 *
 *   prefetching ──(every live agent of the targeted groups prefetched)──▶ rolling
 *   rolling ──(every live targeted agent healthy on its target)──▶ succeeded
 *   rolling ──(an agent failed or went silent holding a slot)──▶ paused | rolled-back | (carry on)
 *   rolling ──(nothing left to try, some failed)──▶ failed
 *   paused ──resume──▶ prefetching ──▶ rolling           any ──new activation/rollback──▶ superseded
 *
 * An agent "holds a slot" while it is out of service for this deployment (migrating, switching,
 * checking): at most maxUnavailable of them at once. An agent silent longer than
 * agentTimeoutSeconds counts neither for the prefetch barrier nor for success, so a host that
 * was switched off does not stall a release; one that goes silent holding a slot is `lost`.
 */
import type { DeploymentState, RolloutSettings, SlotGrant } from "../api/deploy-types.ts";
import { bumpGeneration, environmentAgents, FINISHED, targetFor, targetsGroup, type AgentRow, type Deployment, type EnvRow, type Trx } from "./store.ts";

/** What a transaction changed that the caller acts on after commit. */
export interface Effects {
  /** The environment's generation moved: wake long polls. */
  woke: boolean;
  /** Deployments that ended: outcome and how long the rollout took. */
  finished: { outcome: DeploymentState; seconds: number }[];
}

export function noEffects(): Effects {
  return { woke: false, finished: [] };
}

const SLOT_RETRY_SECONDS = 2;
const MIGRATION_RETRY_SECONDS = 5;

/** States in which an agent is past the prefetch step of a deployment. */
const PAST_PREFETCH = new Set(["prefetched", "waiting", "migrating", "activating", "checking", "healthy", "failed", "rolling-back", "rolled-back"]);
/** Agent states in which a host is out of service. */
const BUSY = new Set(["migrating", "activating", "checking", "rolling-back"]);
/** Agent states that end its part in a deployment without success. */
const FAILED_AGENT = new Set(["failed", "lost", "rolled-back", "rolling-back"]);

export function maxUnavailable(r: RolloutSettings, agents: number): number {
  if (typeof r.maxUnavailable === "number") return r.maxUnavailable;
  const pct = Number(r.maxUnavailable.slice(0, -1));
  return Math.max(1, Math.floor((agents * pct) / 100));
}

function live(a: AgentRow, r: RolloutSettings, now: number): boolean {
  return now - a.last_seen_at <= r.agentTimeoutSeconds * 1000;
}

function onTarget(d: Deployment, a: AgentRow): boolean {
  const t = targetFor(d, a.group_name);
  return t !== undefined && a.current_path === t.storePath && !FAILED_AGENT.has(a.state) && a.state !== "activating" && a.state !== "checking" && a.state !== "migrating";
}

async function setState(trx: Trx, env: EnvRow, d: Deployment, state: DeploymentState, reason: string | null, now: number, fx: Effects): Promise<void> {
  const finished = FINISHED.has(state);
  await trx
    .updateTable("deployment")
    .set({ state, reason, ...(finished && { finished_at: now }) })
    .where("id", "=", d.row.id)
    .execute();
  d.state = state;
  d.row.state = state;
  d.row.reason = reason;
  if (finished) {
    d.row.finished_at = now;
    fx.finished.push({ outcome: state, seconds: (now - d.row.created_at) / 1000 });
  }
  await bumpGeneration(trx, env);
  fx.woke = true;
}

/** An agent failed (health check, activation, migration) or went silent holding a slot. */
async function agentFailed(trx: Trx, env: EnvRow, d: Deployment, why: string, now: number, fx: Effects): Promise<void> {
  if (!(d.state === "rolling" || d.state === "prefetching")) return;
  if (d.rollout.autoRollback) return setState(trx, env, d, "rolled-back", why, now, fx);
  if (d.rollout.pauseOnFailure) return setState(trx, env, d, "paused", why, now, fx);
}

/** Agents silent past the timeout while holding a slot lose it (and count as failed). */
export async function expireSlots(trx: Trx, env: EnvRow, d: Deployment, now: number, fx: Effects): Promise<void> {
  const cutoff = now - d.rollout.agentTimeoutSeconds * 1000;
  const lost = await trx.selectFrom("deploy_agent").selectAll().where("environment_id", "=", env.id).where("slot_deployment_id", "=", d.row.id).where("last_seen_at", "<", cutoff).execute();
  for (const a of lost) {
    const why = `agent ${a.name} went silent for over ${d.rollout.agentTimeoutSeconds}s while holding a rollout slot`;
    await trx.updateTable("deploy_agent").set({ state: "lost", slot_deployment_id: null, slot_granted_at: null, message: why }).where("id", "=", a.id).execute();
    if (d.row.migration_state === "running" && d.row.migration_agent === a.name) {
      // Whether its migration ran is unknown: running it again needs an operator's resume.
      await trx.updateTable("deployment").set({ migration_state: "failed" }).where("id", "=", d.row.id).execute();
      d.row.migration_state = "failed";
      await setState(trx, env, d, d.rollout.pauseOnFailure || d.rollout.autoRollback ? (d.rollout.autoRollback ? "rolled-back" : "paused") : "failed", `${why} (during the migration)`, now, fx);
      continue;
    }
    await agentFailed(trx, env, d, why, now, fx);
  }
}

/** Moves a running deployment on when its agents allow: prefetch done, or the end reached. */
export async function advance(trx: Trx, env: EnvRow, d: Deployment, now: number, fx: Effects): Promise<void> {
  if (!(d.state === "prefetching" || d.state === "rolling")) return;
  const agents = (await environmentAgents(trx, env.id)).filter((a) => targetsGroup(d, a.group_name));
  // Who the rollout waits for: agents alive now, and any that started in this deployment.
  const counted = agents.filter((a) => live(a, d.rollout, now) || a.run_deployment_id === d.row.id);
  if (counted.length === 0) return;
  if (d.state === "prefetching") {
    const ready = counted.every((a) => onTarget(d, a) || (a.deployment_id === d.row.id && PAST_PREFETCH.has(a.state)) || a.run_deployment_id === d.row.id);
    if (!ready) return;
    await setState(trx, env, d, "rolling", null, now, fx);
  }
  let failed = 0;
  for (const a of counted) {
    if (onTarget(d, a) && a.slot_deployment_id === null) continue;
    if (a.run_deployment_id === d.row.id && (FAILED_AGENT.has(a.state) || a.state === "lost")) {
      failed++;
      continue;
    }
    return; // still to do, or in progress
  }
  if (failed === 0) await setState(trx, env, d, "succeeded", null, now, fx);
  else await setState(trx, env, d, "failed", `${failed} agent${failed === 1 ? "" : "s"} failed`, now, fx);
}

function denied(reason: string, retryAfterSeconds: number, leaseSeconds: number): SlotGrant {
  return { granted: false, runMigration: false, retryAfterSeconds, leaseSeconds, reason };
}

/** Decides a slot request of `agent` (already touched) for deployment `d`, the environment's current one. */
export async function requestSlot(trx: Trx, env: EnvRow, d: Deployment, agent: AgentRow, now: number, fx: Effects): Promise<SlotGrant> {
  const lease = d.rollout.agentTimeoutSeconds;
  const target = targetFor(d, agent.group_name);
  if (!target) return denied(`deployment ${d.row.id} has no target for group "${agent.group_name}"`, 30, lease);
  await expireSlots(trx, env, d, now, fx);
  if (agent.slot_deployment_id === d.row.id) {
    return { granted: true, runMigration: d.row.migration_state === "running" && d.row.migration_agent === agent.name, retryAfterSeconds: 0, leaseSeconds: lease, reason: null };
  }
  await advance(trx, env, d, now, fx);
  if (agent.run_deployment_id === d.row.id && (FAILED_AGENT.has(agent.state) || agent.state === "lost")) {
    return denied(`agent ${agent.name} already failed in deployment ${d.row.id}; \`larder deploy resume\` lets it try again`, 30, lease);
  }
  switch (d.state) {
    case "paused":
      return denied(`the rollout is paused${d.row.reason ? `: ${d.row.reason}` : ""}`, SLOT_RETRY_SECONDS, lease);
    case "prefetching":
      return denied("waiting for every agent to prefetch the closure", SLOT_RETRY_SECONDS, lease);
    case "failed":
    case "rolled-back":
    case "superseded":
      return denied(`deployment ${d.row.id} is ${d.state}`, 30, lease);
    case "rolling":
    case "succeeded":
      break;
  }
  if (d.row.migration_state === "failed") return denied("the migration failed", 30, lease);
  if (d.row.migration_state === "running") return denied(`waiting for the migration on agent ${d.row.migration_agent ?? "?"}`, MIGRATION_RETRY_SECONDS, lease);
  const agents = (await environmentAgents(trx, env.id)).filter((a) => targetsGroup(d, a.group_name));
  // Agents still finishing a step of the deployment this one replaced are out of service too.
  const holders = agents.filter((a) => a.slot_deployment_id === d.row.id || (a.deployment_id !== d.row.id && BUSY.has(a.state) && live(a, d.rollout, now))).length;
  const max = maxUnavailable(d.rollout, agents.length);
  if (holders >= max) return denied(`${holders} of at most ${max} agents are out of service`, SLOT_RETRY_SECONDS, lease);
  if (d.rollout.canaries > 0) {
    const mine = agents.filter((a) => a.run_deployment_id === d.row.id);
    const healthy = mine.filter((a) => a.state === "healthy" && a.slot_deployment_id === null).length;
    const tried = mine.filter((a) => !FAILED_AGENT.has(a.state) && a.state !== "lost").length;
    if (healthy < d.rollout.canaries && tried >= d.rollout.canaries) return denied(`waiting for ${d.rollout.canaries} canar${d.rollout.canaries === 1 ? "y" : "ies"} to pass their health check`, SLOT_RETRY_SECONDS, lease);
  }
  let runMigration = false;
  if (d.row.migration_state === "pending") {
    runMigration = true;
    await trx.updateTable("deployment").set({ migration_state: "running", migration_agent: agent.name }).where("id", "=", d.row.id).execute();
    d.row.migration_state = "running";
    d.row.migration_agent = agent.name;
  }
  const previous = agent.current_path !== null && agent.current_path !== target.storePath ? agent.current_path : agent.run_deployment_id === d.row.id ? agent.previous_path : null;
  await trx
    .updateTable("deploy_agent")
    .set({ slot_deployment_id: d.row.id, slot_granted_at: now, run_deployment_id: d.row.id, previous_path: previous, state: runMigration ? "migrating" : "waiting", message: null, deployment_id: d.row.id })
    .where("id", "=", agent.id)
    .execute();
  return { granted: true, runMigration, retryAfterSeconds: 0, leaseSeconds: lease, reason: null };
}

/**
 * What an agent's report means for the rollout; the agent row is already updated (`before`: its
 * state until now). A failure counts once, whether it came with a slot (a failed switch or health
 * check) or without (an agent that cannot run this activation at all).
 */
export async function afterReport(trx: Trx, env: EnvRow, d: Deployment, agent: AgentRow, before: string, now: number, fx: Effects): Promise<void> {
  const target = targetFor(d, agent.group_name);
  const why = `agent ${agent.name} failed${agent.message ? `: ${agent.message}` : ""}`;
  if (agent.slot_deployment_id === d.row.id) {
    if (agent.state === "healthy" && target !== undefined && agent.current_path === target.storePath) {
      await releaseSlot(trx, agent);
    } else if (FAILED_AGENT.has(agent.state)) {
      await releaseSlot(trx, agent);
      await agentFailed(trx, env, d, why, now, fx);
    }
  } else if (agent.state === "failed" && before !== "failed" && agent.run_deployment_id !== d.row.id) {
    // Counted as failed in this deployment from now on, like an agent that failed holding a slot.
    await trx.updateTable("deploy_agent").set({ run_deployment_id: d.row.id }).where("id", "=", agent.id).execute();
    agent.run_deployment_id = d.row.id;
    await agentFailed(trx, env, d, why, now, fx);
  }
  await expireSlots(trx, env, d, now, fx);
  await advance(trx, env, d, now, fx);
}

async function releaseSlot(trx: Trx, agent: AgentRow): Promise<void> {
  await trx.updateTable("deploy_agent").set({ slot_deployment_id: null, slot_granted_at: null }).where("id", "=", agent.id).execute();
  agent.slot_deployment_id = null;
  agent.slot_granted_at = null;
}

/** The migration's outcome, from the agent that was told to run it. */
export async function migrationDone(trx: Trx, env: EnvRow, d: Deployment, agent: AgentRow, ok: boolean, now: number, fx: Effects): Promise<"recorded" | "repeat" | "not-yours"> {
  if (d.row.migration_agent !== agent.name) return "not-yours";
  if (d.row.migration_state === (ok ? "succeeded" : "failed")) return "repeat";
  if (d.row.migration_state !== "running") return "not-yours";
  await trx.updateTable("deployment").set({ migration_state: ok ? "succeeded" : "failed" }).where("id", "=", d.row.id).execute();
  d.row.migration_state = ok ? "succeeded" : "failed";
  if (ok) {
    await trx.updateTable("deploy_agent").set({ state: "activating" }).where("id", "=", agent.id).execute();
    // Agents waiting on the migration may go on.
    await bumpGeneration(trx, env);
    fx.woke = true;
    return "recorded";
  }
  await trx.updateTable("deploy_agent").set({ state: "failed", message: "the migration failed", slot_deployment_id: null, slot_granted_at: null }).where("id", "=", agent.id).execute();
  // Without its migration no agent can go on, so only "pause" keeps the release alive.
  const next: DeploymentState = d.rollout.pauseOnFailure ? "paused" : "failed";
  if (d.state === "rolling" || d.state === "prefetching") await setState(trx, env, d, next, `the migration failed on agent ${agent.name}`, now, fx);
  return "recorded";
}

export async function pause(trx: Trx, env: EnvRow, d: Deployment, who: string, now: number, fx: Effects): Promise<void> {
  await setState(trx, env, d, "paused", `paused by ${who}`, now, fx);
}

/** Resumes a paused rollout: agents that failed may try again, a failed migration runs again. */
export async function resume(trx: Trx, env: EnvRow, d: Deployment, now: number, fx: Effects): Promise<void> {
  // They fetched the closure before failing: they go straight to asking for a slot again.
  await trx
    .updateTable("deploy_agent")
    .set({ run_deployment_id: null, slot_deployment_id: null, slot_granted_at: null, state: "prefetched", message: "the rollout was resumed" })
    .where("environment_id", "=", env.id)
    .where("run_deployment_id", "=", d.row.id)
    .where("state", "in", ["failed", "lost", "rolled-back", "rolling-back"])
    .execute();
  if (d.row.migration_state === "failed" || (d.row.migration_state === "running" && d.row.migration_agent === null)) {
    await trx.updateTable("deployment").set({ migration_state: "pending", migration_agent: null }).where("id", "=", d.row.id).execute();
    d.row.migration_state = "pending";
    d.row.migration_agent = null;
  }
  await setState(trx, env, d, "prefetching", null, now, fx);
  await advance(trx, env, d, now, fx);
}

/** Ends the current deployment because another replaces it; its slots are void. */
export async function supersede(trx: Trx, env: EnvRow, d: Deployment, now: number, fx: Effects): Promise<void> {
  if (!FINISHED.has(d.state)) await setState(trx, env, d, "superseded", null, now, fx);
  await trx.updateTable("deploy_agent").set({ slot_deployment_id: null, slot_granted_at: null }).where("environment_id", "=", env.id).where("slot_deployment_id", "=", d.row.id).execute();
}
