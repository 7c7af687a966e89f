/**
 * The three activation kinds (api/deploy-types.ts): what "switch to path P" means on this host,
 * and where the path it runs now is recorded. Every kind goes through a Nix profile, so the path
 * an agent runs survives its own crash (it re-reads the profile on start), is a GC root on the
 * host, and a rollback is the same switch to another path.
 *
 *   system   nix-env -p <profiles>/system --set P; P/bin/switch-to-configuration switch
 *   profile  nix-env -p <profile> --set P          (only under the allowed profile roots)
 *   service  nix-env -p <state>/profiles/service-<unit> --set P; stop the unit; start P/bin/serve
 */
import { access, constants } from "node:fs/promises";
import { join, normalize } from "node:path";
import type { Activation } from "../../api/deploy-types.ts";
import type { HostStore } from "./store.ts";
import type { Supervisor } from "./supervisor.ts";
import type { RunResult } from "./run.ts";
import { runCommand } from "./run.ts";

export type ActivationKind = Activation["kind"];

export interface ActivatorOptions {
  /** The directory of the system profile (`/nix/var/nix/profiles`). */
  profilesDir: string;
  /** Directories under which a `profile` activation may set profiles. */
  profileRoots: readonly string[];
  allowedKinds: ReadonlySet<ActivationKind>;
  stateDir: string;
  /** The environment of the service, its migration and command health checks. */
  serviceEnv: Record<string, string>;
  /** The environment of Nix and switch-to-configuration. */
  env: Record<string, string>;
}

function merge(...outputs: string[]): string {
  return outputs.filter(Boolean).join("");
}

export class Activator {
  readonly store: HostStore;
  readonly supervisor: Supervisor;
  readonly o: ActivatorOptions;
  constructor(store: HostStore, supervisor: Supervisor, o: ActivatorOptions) {
    this.store = store;
    this.supervisor = supervisor;
    this.o = o;
  }

  /** Why this host refuses an activation, or null. */
  refusal(a: Activation): string | null {
    if (!this.o.allowedKinds.has(a.kind)) return `this agent does not accept "${a.kind}" activations (it accepts: ${[...this.o.allowedKinds].join(", ")})`;
    if (a.kind === "profile") {
      const p = normalize(a.profile);
      if (p !== a.profile || !this.o.profileRoots.some((root) => p.startsWith(`${root.replace(/\/$/, "")}/`))) {
        return `profile ${a.profile} is not under this agent's profile roots (${this.o.profileRoots.join(", ")})`;
      }
    }
    return null;
  }

  profileOf(a: Activation): string {
    switch (a.kind) {
      case "system":
        return join(this.o.profilesDir, "system");
      case "profile":
        return a.profile;
      case "service":
        return join(this.o.stateDir, "profiles", `service-${a.unit}`);
    }
  }

  current(a: Activation): Promise<string | null> {
    return this.store.readProfile(this.profileOf(a));
  }

  /** Switches to `path`, whose closure is local. Stops at the first failing step. */
  async activate(a: Activation, path: string): Promise<RunResult> {
    const refused = this.refusal(a);
    if (refused) return { ok: false, code: null, output: `${refused}\n` };
    const set = await this.store.setProfile(this.profileOf(a), path);
    if (!set.ok) return set;
    switch (a.kind) {
      case "profile":
        return set;
      case "system": {
        const sw = await runCommand([join(this.store.real(path), "bin", "switch-to-configuration"), "switch"], { env: this.o.env });
        return { ...sw, output: merge(set.output, sw.output) };
      }
      case "service": {
        const stop = await this.supervisor.stop(a.unit);
        if (!stop.ok) return { ok: false, code: null, output: merge(set.output, stop.output) };
        const start = await this.startService(a.unit, path);
        return { ok: start.ok, code: start.ok ? 0 : null, output: merge(set.output, stop.output, start.output) };
      }
    }
  }

  private startService(unit: string, path: string): Promise<{ ok: boolean; output: string }> {
    const real = this.store.real(path);
    return this.supervisor.start({ unit, program: join(real, "bin", "serve"), cwd: real, env: this.commandEnv(path) });
  }

  /** After a reboot or a crash, a service whose profile names a path runs again. */
  async ensureRunning(a: Activation): Promise<string | null> {
    if (a.kind !== "service") return null;
    const path = await this.current(a);
    if (path === null || (await this.supervisor.running(a.unit))) return null;
    const r = await this.startService(a.unit, path);
    return r.ok ? `started ${a.unit} on ${path}` : `could not start ${a.unit} on ${path}: ${r.output.trim()}`;
  }

  /** The environment of commands run for a release (migration, health check, the service). */
  commandEnv(path: string): Record<string, string> {
    return { ...this.o.serviceEnv, LARDER_RELEASE: path, LARDER_RELEASE_DIR: this.store.real(path) };
  }

  /** A command of the rollout settings: a relative first element names a file in the release. */
  resolveCommand(argv: readonly string[], path: string): string[] {
    const [first, ...rest] = argv;
    return [first!.startsWith("/") ? first! : join(this.store.real(path), first!), ...rest];
  }

  /** The release's own `bin/migrate`, if it has one (nixfra's convention for services). */
  async defaultMigration(path: string): Promise<string[] | null> {
    const file = join(this.store.real(path), "bin", "migrate");
    try {
      await access(file, constants.X_OK);
      return [file];
    } catch {
      return null;
    }
  }
}
