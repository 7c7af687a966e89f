import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

export async function makeTempDir(prefix: string): Promise<TempDir> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-${prefix.replace(/[^A-Za-z0-9_-]/g, "-")}-`));
  return {
    path: dir,
    cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }),
  };
}
