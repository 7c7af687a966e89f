/**
 * The physical limit of ingest: `cat NAR… | zstd -L -c | sha256sum` on the same NAR bytes, the
 * least work any server must do (compress once, hash once). The processes are joined pipe to
 * pipe, so no byte passes through this process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";

function done(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once("error", (e) => reject(new Error(`${what} could not be started: ${e.message}`)));
    child.once("exit", (code, signal) => (code === 0 ? resolve() : reject(new Error(`${what} failed (${signal ?? `exit ${code}`})`))));
  });
}

/** Seconds for `cat files | zstd -level -c | sha256sum`. */
export async function limitPipeline(tools: { zstd: string; sha256sum: string }, files: string[], level: number): Promise<number> {
  // Read once so both this and the servers' runs find the bytes in the page cache.
  for (const f of files) await readFile(f);
  const started = process.hrtime.bigint();
  const cat = spawn("cat", files, { stdio: ["ignore", "pipe", "inherit"] });
  const zstd = spawn(tools.zstd, [`-${level}`, "-c", "-q"], { stdio: [cat.stdout, "pipe", "inherit"] });
  const sha = spawn(tools.sha256sum, [], { stdio: [zstd.stdout, "ignore", "inherit"] });
  // The children hold their own copies of the pipe ends; ours would only keep the pipes open.
  cat.stdout?.destroy();
  zstd.stdout?.destroy();
  await Promise.all([done(cat, "cat"), done(zstd, "zstd"), done(sha, "sha256sum")]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}
