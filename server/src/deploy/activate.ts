/**
 * Starting a deployment (a new release or a rollback): under the environment's lock and the
 * cache's shared GC lock, check the targets' closures, supersede what runs, record the
 * deployment and move the environment's pins to the new targets and the paths they replace.
 */
import type { Activation, RolloutSettings } from "../api/deploy-types.ts";
import type { CacheRow } from "../db/caches.ts";
import type { Db } from "../db/connect.ts";
import { existingHashes, lockCache } from "../db/objects.ts";
import { ServerError } from "../errors.ts";
import { checkClosure } from "./closure.ts";
import { replaceDeployPins } from "./pins.ts";
import { advance, supersede, type Effects } from "./rollout.ts";
import { bumpGeneration, pruneLogs, currentDeployment, environmentAgents, parseDeployment, RUNNING, targetsGroup, type Deployment, type EnvRow, type Target, type Trx } from "./store.ts";

export interface NewDeployment {
  targets: Map<string, Target>;
  rollout: RolloutSettings;
  message: string | null;
  createdBy: string | null;
  rollbackOf: number | null;
  /** Replace a rollout that is still moving (a rollback always does). */
  supersede: boolean;
}

/** Paths listed in a refusal body at most; the message gives the totals. */
const REFUSAL_LIST_MAX = 1000;

export function needsMigration(targets: Map<string, Target>, rollout: RolloutSettings): boolean {
  // A service closure may carry bin/migrate (nixfra's convention): its agent knows, the server does not.
  return rollout.migration !== undefined || [...targets.values()].some((t) => t.activation.kind === "service");
}

export async function startDeployment(db: Db, trx: Trx, env: EnvRow, cache: CacheRow, n: NewDeployment, now: number, fx: Effects): Promise<Deployment> {
  // GC deletes a whole batch under the exclusive form: nothing of the closure can go between the
  // check and the pins.
  await lockCache(trx, db, cache.id, "shared");
  const current = await currentDeployment(trx, env);
  if (current && RUNNING.has(current.state) && !n.supersede) {
    throw new ServerError("Conflict", `Conflict: deployment ${current.row.id} of "${env.name}" is still ${current.state}; pass supersede (larder deploy activate --supersede) to replace it, or pause it first.`);
  }
  const roots = [...new Set([...n.targets.values()].map((t) => t.storePath.slice(cache.store_dir.length + 1)))];
  const check = await checkClosure(trx, cache, roots);
  if (check.missing.length > 0 || check.unsigned.length > 0) {
    const parts = [
      ...(check.missing.length > 0 ? [`${check.missing.length} path${check.missing.length === 1 ? " is" : "s are"} not in the cache (push the closure first)`] : []),
      ...(check.unsigned.length > 0 ? [`${check.unsigned.length} path${check.unsigned.length === 1 ? " has" : "s have"} no valid signature by the cache's key`] : []),
    ];
    throw new ServerError("ClosureIncomplete", `The target's closure cannot be deployed: ${parts.join("; ")}.`, {
      details: { missing: check.missing.slice(0, REFUSAL_LIST_MAX), unsigned: check.unsigned.slice(0, REFUSAL_LIST_MAX) },
    });
  }
  // What runs now is the rollback target: the current deployment's paths and what agents report.
  const previous = new Set<string>();
  if (current) for (const t of current.targets.values()) previous.add(t.storePath);
  const probe: Deployment = { row: {} as Deployment["row"], state: "prefetching", targets: n.targets, rollout: n.rollout, previous: [] };
  for (const a of await environmentAgents(trx, env.id)) {
    if (a.current_path !== null && a.current_path.startsWith(`${cache.store_dir}/`) && targetsGroup(probe, a.group_name)) previous.add(a.current_path);
  }
  for (const t of n.targets.values()) previous.delete(t.storePath);
  if (current) await supersede(trx, env, current, now, fx);
  const targetsJson: Record<string, { storePath: string; activation: Activation }> = {};
  for (const [group, t] of n.targets) Object.defineProperty(targetsJson, group, { value: t, enumerable: true, writable: true, configurable: true });
  const inserted = await trx
    .insertInto("deployment")
    .values({
      environment_id: env.id,
      state: "prefetching",
      targets: JSON.stringify(targetsJson),
      rollout: JSON.stringify(n.rollout),
      previous: JSON.stringify([...previous].sort()),
      created_by: n.createdBy,
      message: n.message,
      rollback_of: n.rollbackOf,
      reason: null,
      // A rollback returns to code whose schema the database already had: no migration.
      migration_state: n.rollbackOf === null && needsMigration(n.targets, n.rollout) ? "pending" : "none",
      migration_agent: null,
      created_at: now,
      finished_at: null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  await trx.updateTable("deploy_environment").set({ current_deployment_id: inserted.id }).where("id", "=", env.id).execute();
  env.current_deployment_id = inserted.id;
  await bumpGeneration(trx, env);
  fx.woke = true;
  const previousHashes = await existingHashes({ ...db, kysely: trx }, cache.id, [...previous].map((p) => p.slice(cache.store_dir.length + 1, cache.store_dir.length + 33)));
  await replaceDeployPins(trx, cache.id, env.name, roots.map((r) => r.slice(0, 32)), previousHashes, now);
  await pruneLogs(trx, env.id);
  const row = await trx.selectFrom("deployment").selectAll().where("id", "=", inserted.id).executeTakeFirstOrThrow();
  const d = parseDeployment(row);
  // Agents already on their target count at once; a fleet already there is done.
  await advance(trx, env, d, now, fx);
  return d;
}
