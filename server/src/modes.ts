/** The roles one larderd binary can run in (attic's `--mode`), each returning an exit code. */
import type { Config } from "./config/load.ts";
import { openDb } from "./db/connect.ts";
import { startServer } from "./server.ts";

export const MODES = ["monolithic", "api-server", "garbage-collector", "garbage-collector-once", "db-migrations", "check-config"] as const;
export type Mode = (typeof MODES)[number];

export interface ModeHooks {
  /** Registers what to do on SIGINT/SIGTERM. */
  onSignal(handler: () => void): void;
  /** Called between GC steps (crash tests stop the process there). */
  gcCheckpoint?: (step: string) => void;
  /** Test-only object batch size for GC (crash tests; GcDeps.objectBatch). */
  gcObjectBatch?: number;
}

function untilSignal(hooks: ModeHooks): Promise<void> {
  return new Promise((resolve) => hooks.onSignal(resolve));
}

export async function runMode(mode: Mode, config: Config, hooks: ModeHooks): Promise<number> {
  switch (mode) {
    case "check-config":
      process.stdout.write("configuration is valid\n");
      return 0;
    case "db-migrations": {
      const db = await openDb(config.database);
      try {
        const applied = await db.migrate();
        process.stdout.write(applied.length ? `applied migrations: ${applied.join(", ")}\n` : "database schema is up to date\n");
        return 0;
      } finally {
        await db.close();
      }
    }
    case "monolithic":
    case "api-server": {
      const server = await startServer(config, { defaultMetrics: true });
      server.ctx.log.info({ url: server.url, mode }, "larderd listening");
      const { startGcLoop } = await import("./gc/loop.ts");
      const gc = mode === "monolithic" ? startGcLoop(server.ctx) : undefined;
      await untilSignal(hooks);
      server.ctx.log.info("shutting down");
      await gc?.stop();
      await server.close();
      return 0;
    }
    case "garbage-collector":
    case "garbage-collector-once": {
      const { runGcMode } = await import("./gc/loop.ts");
      return runGcMode(config, mode === "garbage-collector-once", () => untilSignal(hooks), hooks.gcCheckpoint, hooks.gcObjectBatch);
    }
    default: {
      const never: never = mode;
      throw new Error(`unknown mode ${String(never)}`);
    }
  }
}
