import type { AppContext } from "../context.ts";
import type { Config } from "../config/load.ts";

export function startGcLoop(_ctx: AppContext): { stop(): Promise<void> } {
  return { async stop() {} };
}

export async function runGcMode(_config: Config, _once: boolean, _until: () => Promise<void>): Promise<number> {
  throw new Error("garbage collection modes are not available yet");
}
