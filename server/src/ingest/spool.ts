/**
 * Spool file names and their cleanup. An upload in flight owns its spool file; a process killed
 * with -9 leaves its files behind. Several larderd processes on one machine may share a spool
 * directory (api-servers behind a local balancer), so a file is only removed when it is certainly
 * nobody's: it names this machine and a process that no longer runs (or this very process, at
 * start, before it made any), or it is older than the GC grace period, which also covers
 * directories shared between machines, whose processes cannot be checked from here.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { readdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";

const HOST = hostname().replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "host";
const NAME = /^ingest-[0-9a-f]+\.(\d+)\.([A-Za-z0-9_-]+)\.tmp$/;

export function spoolFileName(): string {
  return `ingest-${randomBytes(12).toString("hex")}.${process.pid}.${HOST}.tmp`;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes the stale spool files in `dir`; returns how many. */
export async function sweepSpool(dir: string, opts: { graceMs: number; atStart: boolean; now?: number }): Promise<number> {
  const now = opts.now ?? Date.now();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw e;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith("ingest-") || !name.endsWith(".tmp")) continue;
    const m = NAME.exec(name);
    let stale = false;
    if (m && m[2] === HOST) {
      const pid = Number(m[1]);
      stale = pid === process.pid ? opts.atStart : !running(pid);
    }
    const path = join(dir, name);
    if (!stale) {
      const st = await stat(path).catch(() => undefined);
      stale = st !== undefined && now - st.mtimeMs > opts.graceMs;
    }
    if (!stale) continue;
    try {
      await unlink(path);
      removed++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  return removed;
}
