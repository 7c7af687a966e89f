/**
 * What the agent must remember across a crash or kill -9, in `<state dir>/agent.json` (written
 * to a temporary file, synced, then renamed, so it is always whole). The path it runs is not here: the
 * profiles hold it. This is what a profile cannot say: that a switch was under way and not yet
 * verified, and whether this host ran a deployment's migration.
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { activation } from "../../api/deploy-types.ts";

const inflight = z.object({
  deploymentId: z.number().int(),
  target: z.string(),
  previous: z.string().nullable(),
  activation,
  step: z.enum(["migrating", "activating", "checking", "rolling-back"]),
});

const migration = z.object({
  deploymentId: z.number().int(),
  /** "started" and no outcome after a restart: whether it finished is unknown. */
  outcome: z.enum(["started", "succeeded", "failed"]),
  log: z.string(),
});

const agentState = z.object({
  /** The activation last used, so a restart knows which profile names the current path. */
  activation: activation.optional(),
  inflight: inflight.optional(),
  migration: migration.optional(),
  /** The deployment whose closure is already local and reported. */
  prefetched: z.number().int().optional(),
  /** The last report that ended a turn, re-sent on start so a restart does not erase a failure. */
  outcome: z.object({ deploymentId: z.number().int(), state: z.enum(["healthy", "failed", "rolled-back"]) }).optional(),
});

export type AgentState = z.infer<typeof agentState>;
export type Inflight = z.infer<typeof inflight>;

export class StateFile {
  readonly file: string;
  constructor(dir: string) {
    this.file = join(dir, "agent.json");
  }

  async load(): Promise<AgentState> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw e;
    }
    const parsed = agentState.safeParse(JSON.parse(text));
    // An unreadable state (an older layout) only costs a re-check: start clean.
    return parsed.success ? parsed.data : {};
  }

  async save(s: AgentState): Promise<void> {
    await mkdir(join(this.file, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    // Synced before the rename: after a power cut the file is the old state or the new, never empty.
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(s));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
  }
}
