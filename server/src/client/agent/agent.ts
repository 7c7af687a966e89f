/**
 * `larder agent`: one host's side of a rolling deploy (the turn described in
 * api/deploy-types.ts). One loop: long-poll the desired state, take the one step it calls for,
 * poll again. Every step is safe to repeat, and what a crash could leave half-done (a switch not
 * yet verified, a migration) is in the state file, so a restarted agent — after kill -9, a
 * reboot, or switch-to-configuration restarting it — finishes or undoes it before anything else.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { TransientError } from "../api.ts";
import type { Activation, AgentDesired, AgentReport, SlotGrant } from "../../api/deploy-types.ts";
import type { Activator } from "./activation.ts";
import { healthCheck } from "./health.ts";
import { runCommand } from "./run.ts";
import { AgentRefused, retryDelayMs, type AgentApi } from "./server-api.ts";
import type { AgentState, Inflight, StateFile } from "./state.ts";
import type { HostStore } from "./store.ts";

type Deployment = NonNullable<AgentDesired["deployment"]>;

/** The longest a poll waits on the server (its limit is 60 s). */
const POLL_SECONDS = 50;
/** A failed prefetch is tried again after this long. */
const PREFETCH_RETRY_SECONDS = 10;

export interface AgentDeps {
  api: AgentApi;
  store: HostStore;
  activator: Activator;
  state: StateFile;
  log: (line: string) => void;
  /** Set to stop after the current step (SIGTERM). */
  signal: AbortSignal;
}

export class Agent {
  private s: AgentState = {};
  private generation = -1;
  /** The last report sent, so a steady state is not re-sent on every poll. */
  private lastReport = "";
  /** Reports go out one at a time, in order: a heartbeat never lands after the report it precedes. */
  private reports: Promise<unknown> = Promise.resolve();
  private step: { deploymentId: number; state: AgentReport["state"]; currentPath: string | null } | null = null;
  private started = false;

  private readonly d: AgentDeps;
  constructor(d: AgentDeps) {
    this.d = d;
  }

  async run(): Promise<void> {
    this.s = await this.d.state.load();
    let failures = 0;
    let wait = 0;
    while (!this.d.signal.aborted) {
      let desired: AgentDesired;
      try {
        desired = await this.d.api.desired(this.generation, wait, this.d.signal);
        if (failures > 0) this.d.log(`reached the server again after ${failures} failed attempt${failures === 1 ? "" : "s"}`);
        failures = 0;
      } catch (e) {
        if (this.d.signal.aborted) break;
        failures++;
        if (failures === 1 || failures % 10 === 0) this.d.log(`${(e as Error).message} (attempt ${failures}; retrying)`);
        await this.pause(retryDelayMs(failures - 1));
        continue;
      }
      this.generation = desired.generation;
      try {
        if (!this.started) {
          await this.recover(desired);
          this.started = true;
        }
        wait = await this.act(desired);
      } catch (e) {
        // A step that could not finish (the server away for long, a refusal): start over from a fresh poll.
        this.d.log(`${(e as Error).message}; polling again`);
        this.generation = -1;
        wait = 0;
        await this.pause(retryDelayMs(2));
      }
    }
  }

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.d.signal });
    } catch {
      // Stopping.
    }
  }

  private async save(change: Partial<AgentState>): Promise<void> {
    this.s = { ...this.s, ...change };
    for (const [k, v] of Object.entries(change)) if (v === undefined) delete (this.s as Record<string, unknown>)[k];
    await this.d.state.save(this.s);
  }

  /** Sends a report, retrying transient failures until it lands (or the agent stops). */
  private report(r: Omit<AgentReport, "agent">): Promise<void> {
    const send = async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.d.api.report(r);
          this.lastReport = JSON.stringify([r.deploymentId, r.state, r.currentPath]);
          return;
        } catch (e) {
          if (!(e instanceof TransientError) || this.d.signal.aborted) throw e;
          if (attempt === 0 || attempt % 10 === 9) this.d.log(`${e.message} (retrying)`);
          await this.pause(retryDelayMs(attempt, 10_000));
        }
      }
    };
    const next = this.reports.then(send, send);
    this.reports = next.catch(() => undefined);
    return next;
  }

  private async reportOnce(r: Omit<AgentReport, "agent">): Promise<void> {
    if (this.lastReport === JSON.stringify([r.deploymentId, r.state, r.currentPath])) return;
    await this.report(r);
  }

  /** Reports the current step again every third of the lease while a slot is held. */
  private heartbeat(leaseSeconds: number): () => void {
    const every = Math.max(1000, (leaseSeconds * 1000) / 3);
    const timer = setInterval(() => {
      const s = this.step;
      if (s) void this.report({ deploymentId: s.deploymentId, state: s.state, currentPath: s.currentPath }).catch((e: Error) => this.d.log(`heartbeat: ${e.message}`));
    }, every);
    return () => clearInterval(timer);
  }

  private async setStep(d: Deployment, state: AgentReport["state"], currentPath: string | null, extra: { message?: string; log?: string } = {}): Promise<void> {
    this.step = { deploymentId: d.id, state, currentPath };
    await this.report({ deploymentId: d.id, state, currentPath, ...extra });
  }

  private activationOf(desired: AgentDesired): Activation | undefined {
    return desired.deployment?.activation ?? this.s.activation;
  }

  private async current(a: Activation | undefined): Promise<string | null> {
    return a === undefined ? null : this.d.activator.current(a);
  }

  /** On start: bring a service back up, finish or undo an interrupted switch, restate the last outcome. */
  private async recover(desired: AgentDesired): Promise<void> {
    const a = this.activationOf(desired);
    if (a !== undefined && this.d.activator.refusal(a) === null) {
      const started = await this.d.activator.ensureRunning(a);
      if (started) this.d.log(started);
    }
    const f = this.s.inflight;
    if (f !== undefined) {
      const d = desired.deployment;
      this.d.log(`resuming after a restart: deployment ${f.deploymentId} was ${f.step} ${f.target}`);
      if (d !== null && d.id === f.deploymentId && f.step !== "rolling-back" && (d.state === "rolling" || d.state === "succeeded")) {
        const grant = await this.d.api.slot(d.id);
        if (grant.granted) {
          // Still ours: do the step again (switching to the same path twice is harmless).
          await this.turn(d, grant, f.previous);
          return;
        }
      }
      // The slot is gone: this host must not stay on a release nobody verified.
      const now = await this.d.activator.current(f.activation);
      if (f.previous !== null && now !== f.previous) {
        await this.rollback({ ...f, step: "rolling-back" }, `the agent restarted during ${f.step} and no longer holds its slot`);
      } else {
        await this.save({ inflight: undefined });
        await this.report({ deploymentId: f.deploymentId, state: "failed", currentPath: now, message: `the agent restarted during ${f.step}` });
        await this.save({ outcome: { deploymentId: f.deploymentId, state: "failed" } });
      }
      return;
    }
    const o = this.s.outcome;
    const cur = await this.current(a);
    if (o !== undefined && desired.deployment?.id === o.deploymentId) {
      await this.report({ deploymentId: o.deploymentId, state: o.state, currentPath: cur });
    } else {
      await this.report({ deploymentId: null, state: "idle", currentPath: cur });
    }
  }

  /** One step towards the desired state; returns how long the next poll may wait. */
  private async act(desired: AgentDesired): Promise<number> {
    const d = desired.deployment;
    if (d === null) {
      await this.reportOnce({ deploymentId: null, state: "idle", currentPath: await this.current(this.s.activation) });
      return POLL_SECONDS;
    }
    const refused = this.d.activator.refusal(d.activation);
    if (refused) return this.refuse(d, refused);
    const current = await this.d.activator.current(d.activation);
    if (d.state === "rolled-back") {
      // The fleet returns to the previous release: hosts already switched go back.
      if (current === d.target && d.previous !== null) {
        await this.rollback({ deploymentId: d.id, target: d.target, previous: d.previous, activation: d.activation, step: "rolling-back" }, `deployment ${d.id} was rolled back`);
      }
      return POLL_SECONDS;
    }
    if (!(d.state === "prefetching" || d.state === "rolling" || d.state === "succeeded")) return POLL_SECONDS;
    if (current === d.target) {
      if (this.s.outcome?.deploymentId !== d.id || this.s.outcome.state !== "healthy") {
        await this.reportOnce({ deploymentId: d.id, state: "healthy", currentPath: current });
      }
      return POLL_SECONDS;
    }
    if (this.s.prefetched !== d.id) {
      this.step = { deploymentId: d.id, state: "prefetching", currentPath: current };
      await this.reportOnce({ deploymentId: d.id, state: "prefetching", currentPath: current });
      this.d.log(`deployment ${d.id}: fetching ${d.target} from ${desired.substituter.url}`);
      const fetched = await this.d.store.realise(d.target, desired.substituter, await this.d.api.token());
      if (!fetched.ok) {
        this.d.log(`deployment ${d.id}: fetching ${d.target} failed; trying again in ${PREFETCH_RETRY_SECONDS}s`);
        await this.report({ deploymentId: d.id, state: "prefetching", currentPath: current, message: `fetching the closure failed`, log: fetched.output });
        return PREFETCH_RETRY_SECONDS;
      }
      await this.report({ deploymentId: d.id, state: "prefetched", currentPath: current });
      await this.save({ prefetched: d.id });
    }
    if (d.state === "prefetching") return POLL_SECONDS;
    const grant = await this.d.api.slot(d.id);
    if (!grant.granted) return Math.max(1, Math.min(POLL_SECONDS, grant.retryAfterSeconds));
    await this.turn(d, grant, current);
    return 0;
  }

  /**
   * A deployment this host does not accept (a kind or profile it does not allow) fails here
   * without touching anything — through a slot, so the rollout pauses or carries on by its
   * settings instead of waiting for this host forever.
   */
  private async refuse(d: Deployment, why: string): Promise<number> {
    if (this.s.outcome?.deploymentId === d.id) return POLL_SECONDS;
    const current = await this.current(this.s.activation);
    if (d.state === "prefetching") {
      // Past the prefetch barrier (there is nothing to fetch), so the rollout reaches this host.
      await this.reportOnce({ deploymentId: d.id, state: "failed", currentPath: current, message: why });
      return POLL_SECONDS;
    }
    if (!(d.state === "rolling" || d.state === "succeeded")) return POLL_SECONDS;
    const grant = await this.d.api.slot(d.id);
    if (!grant.granted) return Math.max(1, Math.min(POLL_SECONDS, grant.retryAfterSeconds));
    this.d.log(`deployment ${d.id}: refused: ${why}`);
    if (grant.runMigration) await this.d.api.migration({ deploymentId: d.id, ok: false, log: `not run: ${why}\n` });
    else await this.report({ deploymentId: d.id, state: "failed", currentPath: current, message: why, log: `${why}\n` });
    await this.save({ outcome: { deploymentId: d.id, state: "failed" } });
    return POLL_SECONDS;
  }

  /** Holding a slot: migration if told, switch, health check, and on failure back to `previous`. */
  private async turn(d: Deployment, grant: SlotGrant, current: string | null): Promise<void> {
    const previous = d.previous ?? current;
    const f: Inflight = { deploymentId: d.id, target: d.target, previous, activation: d.activation, step: "activating" };
    const stopBeat = this.heartbeat(grant.leaseSeconds);
    try {
      if (grant.runMigration) {
        const ok = await this.migrate(d, f, current);
        if (!ok) return;
      }
      await this.save({ inflight: { ...f, step: "activating" }, activation: d.activation, outcome: undefined });
      await this.setStep(d, "activating", current);
      this.d.log(`deployment ${d.id}: switching to ${d.target}`);
      const switched = await this.d.activator.activate(d.activation, d.target);
      const now = await this.d.activator.current(d.activation);
      if (!switched.ok) {
        await this.fail(d, f, now, "the activation failed", switched.output);
        return;
      }
      await this.save({ inflight: { ...f, step: "checking" } });
      await this.report({ deploymentId: d.id, state: "activating", currentPath: d.target, log: switched.output });
      await this.setStep(d, "checking", d.target);
      const health = await healthCheck(d.healthCheck, d.activation, d.target, this.d.activator);
      if (!health.ok) {
        await this.fail(d, f, d.target, "the health check failed", health.output);
        return;
      }
      this.step = null;
      await this.report({ deploymentId: d.id, state: "healthy", currentPath: d.target, log: health.output });
      await this.save({ inflight: undefined, outcome: { deploymentId: d.id, state: "healthy" } });
      this.d.log(`deployment ${d.id}: healthy on ${d.target}`);
    } finally {
      this.step = null;
      stopBeat();
    }
  }

  /** Runs the deployment's migration exactly once on this host, and reports it (again, if a report was lost). */
  private async migrate(d: Deployment, f: Inflight, current: string | null): Promise<boolean> {
    const m = this.s.migration?.deploymentId === d.id ? this.s.migration : undefined;
    let ok: boolean;
    let log: string;
    if (m?.outcome === "succeeded" || m?.outcome === "failed") {
      ok = m.outcome === "succeeded";
      log = m.log;
    } else if (m?.outcome === "started") {
      // It may have run, wholly or in part: running it again is the operator's call (resume).
      ok = false;
      log = `${m.log}the agent restarted while the migration ran; whether it finished is unknown\n`;
    } else {
      await this.save({ inflight: { ...f, step: "migrating" }, migration: { deploymentId: d.id, outcome: "started", log: "" } });
      await this.setStep(d, "migrating", current);
      const argv = d.migration?.command ?? (d.activation.kind === "service" ? await this.d.activator.defaultMigration(d.target) : null);
      this.d.log(`deployment ${d.id}: ${argv ? `running the migration ${argv.join(" ")}` : "no migration to run"}`);
      const r = argv
        ? await runCommand(this.d.activator.resolveCommand(argv, d.target), { env: this.d.activator.commandEnv(d.target), cwd: this.d.store.real(d.target) })
        : { ok: true, output: "no migration command, and the release has no bin/migrate\n" };
      ok = r.ok;
      log = r.output;
      await this.save({ migration: { deploymentId: d.id, outcome: ok ? "succeeded" : "failed", log } });
    }
    try {
      await this.d.api.migration({ deploymentId: d.id, ok, log });
    } catch (e) {
      // 409: the server already has an outcome for it (our earlier report landed) or gave it up.
      if (!(e instanceof AgentRefused && e.status === 409)) throw e;
      this.d.log(`deployment ${d.id}: ${e.message}`);
    }
    // The outcome is remembered only until the server has it: after `larder deploy resume` the
    // server hands the migration out again, and that new attempt must run, not replay this one.
    await this.save({ migration: undefined });
    if (!ok) {
      this.d.log(`deployment ${d.id}: the migration failed`);
      await this.save({ inflight: undefined, outcome: { deploymentId: d.id, state: "failed" } });
    }
    return ok;
  }

  private async fail(d: Deployment, f: Inflight, now: string | null, why: string, output: string): Promise<void> {
    this.d.log(`deployment ${d.id}: ${why}`);
    this.step = null;
    await this.report({ deploymentId: d.id, state: "failed", currentPath: now, message: why, log: output });
    await this.save({ outcome: { deploymentId: d.id, state: "failed" } });
    if (f.previous !== null && now !== f.previous) await this.rollback({ ...f, step: "rolling-back" }, why);
    else await this.save({ inflight: undefined });
  }

  /** Switches back to `f.previous` and reports how that went. */
  private async rollback(f: Inflight, why: string): Promise<void> {
    const previous = f.previous as string;
    await this.save({ inflight: f });
    this.d.log(`deployment ${f.deploymentId}: ${why}; returning to ${previous}`);
    await this.report({ deploymentId: f.deploymentId, state: "rolling-back", currentPath: await this.d.activator.current(f.activation), message: why });
    const back = await this.d.activator.activate(f.activation, previous);
    const now = await this.d.activator.current(f.activation);
    if (back.ok) {
      await this.report({ deploymentId: f.deploymentId, state: "rolled-back", currentPath: now, message: why, log: back.output });
      await this.save({ inflight: undefined, outcome: { deploymentId: f.deploymentId, state: "rolled-back" } });
    } else {
      await this.report({ deploymentId: f.deploymentId, state: "failed", currentPath: now, message: `returning to ${previous} failed too`, log: back.output });
      await this.save({ inflight: undefined, outcome: { deploymentId: f.deploymentId, state: "failed" } });
    }
  }
}
