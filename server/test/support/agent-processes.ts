/** Ends the services a process supervisor started (their pid files in `dir`), whole process groups. */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export async function killGroupOf(dir: string): Promise<void> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith(".pid"));
  } catch {
    return;
  }
  for (const f of files) {
    // "PID STARTTIME" (src/client/agent/supervisor.ts).
    const pid = Number((await readFile(join(dir, f), "utf8")).trim().split(/\s+/)[0]);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
