/**
 * Long-poll wake-ups and the slot sweeper, one per server context.
 *
 * A change made by this process wakes its waiters at once. A change made by another api-server
 * on the same database is seen by a re-check every RECHECK_MS: one query for all environments
 * that have waiters, however many agents wait. The sweeper takes slots away from agents that went
 * silent even when no other agent is asking (a fleet of one that died mid-activation).
 */
import type { AppContext } from "../context.ts";
import { FINISHED, currentDeployment, lockEnvironment, RUNNING } from "./store.ts";
import { advance, expireSlots, noEffects, type Effects } from "./rollout.ts";

const RECHECK_MS = 1000;
const SWEEP_MS = 5000;

interface Waiter {
  after: number;
  wake: () => void;
}

export interface DeployWatch {
  /** Resolves when the environment's generation is above `after`, or after `ms`, or on close. */
  wait(envId: number, after: number, ms: number, signal: AbortSignal): Promise<void>;
  notify(envId: number): void;
  /** Applies what a committed transaction changed: wake-ups and metrics. */
  apply(envId: number, fx: Effects): void;
  close(): void;
}

const watches = new WeakMap<AppContext, DeployWatch>();

export function deployWatch(ctx: AppContext): DeployWatch {
  let w = watches.get(ctx);
  if (!w) {
    w = createWatch(ctx);
    watches.set(ctx, w);
  }
  return w;
}

function createWatch(ctx: AppContext): DeployWatch {
  const waiters = new Map<number, Set<Waiter>>();
  let closed = false;
  let rechecking = false;
  let sweeping = false;

  function wakeAll(envId: number, generation: number): void {
    const set = waiters.get(envId);
    if (!set) return;
    for (const x of set) if (generation > x.after) x.wake();
  }

  async function recheck(): Promise<void> {
    if (rechecking || waiters.size === 0) return;
    rechecking = true;
    try {
      const rows = await ctx.db.kysely.selectFrom("deploy_environment").select(["id", "generation"]).where("id", "in", [...waiters.keys()]).execute();
      for (const r of rows) wakeAll(r.id, r.generation);
    } catch (e) {
      ctx.log.warn({ err: e }, "deploy: could not re-check environment generations");
    } finally {
      rechecking = false;
    }
  }

  async function sweep(): Promise<void> {
    if (sweeping) return;
    sweeping = true;
    try {
      const running = await ctx.db.kysely
        .selectFrom("deployment")
        .innerJoin("deploy_environment", "deploy_environment.current_deployment_id", "deployment.id")
        .select("deploy_environment.id as env_id")
        .where("deployment.state", "in", [...RUNNING])
        .execute();
      for (const { env_id } of running) {
        const fx = noEffects();
        await lockEnvironment(ctx.db, env_id, async (trx, env) => {
          const d = await currentDeployment(trx, env);
          if (!d || FINISHED.has(d.state)) return;
          const now = Date.now();
          await expireSlots(trx, env, d, now, fx);
          await advance(trx, env, d, now, fx);
        });
        watch.apply(env_id, fx);
      }
    } catch (e) {
      ctx.log.warn({ err: e }, "deploy: slot sweep failed; retrying");
    } finally {
      sweeping = false;
    }
  }

  const recheckTimer = setInterval(() => void recheck(), RECHECK_MS);
  const sweepTimer = setInterval(() => void sweep(), SWEEP_MS);
  recheckTimer.unref();
  sweepTimer.unref();

  const watch: DeployWatch = {
    wait(envId, after, ms, signal) {
      if (closed || signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        let set = waiters.get(envId);
        if (!set) waiters.set(envId, (set = new Set()));
        const waiter: Waiter = { after, wake: done };
        set.add(waiter);
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          const s = waiters.get(envId);
          if (s) {
            s.delete(waiter);
            if (s.size === 0) waiters.delete(envId);
          }
          resolve();
        }
      });
    },
    notify(envId) {
      const set = waiters.get(envId);
      if (set) for (const x of [...set]) x.wake();
    },
    apply(envId, fx) {
      for (const f of fx.finished) {
        ctx.metrics.deployments.inc({ outcome: f.outcome });
        if (f.outcome !== "superseded") ctx.metrics.rolloutDuration.observe({ outcome: f.outcome }, f.seconds);
      }
      if (fx.woke) watch.notify(envId);
    },
    close() {
      closed = true;
      if (watches.get(ctx) === watch) watches.delete(ctx);
      clearInterval(recheckTimer);
      clearInterval(sweepTimer);
      for (const set of [...waiters.values()]) for (const x of [...set]) x.wake();
    },
  };
  return watch;
}
