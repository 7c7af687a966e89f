/** GC a year from now with one hour's retention, after making every object old: what nothing keeps goes. */
import { pino } from "pino";
import { collectGarbage, type GcStats } from "../../src/gc/run.ts";
import type { Larder } from "./larder.ts";

export const A_YEAR_ON = () => Date.now() + 365 * 24 * 3600_000;

export function gcAYearOn(l: Larder, now = A_YEAR_ON()): Promise<GcStats> {
  return collectGarbage(
    { db: l.server.ctx.db, pool: l.server.ctx.pool, gc: { ...l.config.gc, defaultRetentionSeconds: 3600 }, buildLogs: l.config.buildLogs, log: pino({ level: "silent" }) },
    now,
  );
}

export async function expireAllObjects(l: Larder): Promise<void> {
  await l.server.ctx.accessTracker.flush();
  await l.server.ctx.db.kysely.updateTable("object").set({ created_at: 0, last_accessed_at: 0 }).execute();
}
