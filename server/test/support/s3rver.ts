import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { StorageConfig } from "../../src/storage/types.ts";
import { makeTempDir } from "./tmp.ts";

// s3rver accepts only these credentials when it checks signatures.
const CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
const REGION = "us-east-1";
const STARTUP_TIMEOUT_MS = 15_000;

export interface S3rverHandle {
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Ready for createStorage(): path-style access to `bucket` on this server. */
  storageConfig: StorageConfig;
  stop(): Promise<void>;
}

/** Starts a private s3rver on 127.0.0.1 (random port, temp data dir) with `bucket` already created. */
export async function startS3rver(opts: { bucket?: string } = {}): Promise<S3rverHandle> {
  const bucket = opts.bucket ?? `test-${randomBytes(4).toString("hex")}`;
  const dir = await makeTempDir("s3rver");
  const script = fileURLToPath(new URL("./s3rver-child.ts", import.meta.url));
  const child = spawn(process.execPath, [script, dir.path, bucket], { stdio: ["pipe", "pipe", "pipe"] });

  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr = (stderr + s).slice(-4000);
  });

  let port: number;
  try {
    port = await readPort(child, () => stderr);
  } catch (err) {
    child.kill("SIGKILL");
    await dir.cleanup();
    throw err;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    bucket,
    region: REGION,
    credentials: { ...CREDENTIALS },
    storageConfig: { type: "s3", bucket, region: REGION, endpoint, credentials: { ...CREDENTIALS } },
    stop() {
      stopped ??= (async () => {
        await stopChild(child);
        await dir.cleanup();
      })();
      return stopped;
    },
  };
}

function readPort(child: ChildProcess, stderr: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`s3rver did not start within ${STARTUP_TIMEOUT_MS} ms: ${stderr()}`)),
      STARTUP_TIMEOUT_MS,
    );
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (line) => {
      clearTimeout(timer);
      lines.close();
      try {
        const { port } = JSON.parse(line) as { port: unknown };
        if (typeof port !== "number") throw new Error("no port");
        resolve(port);
      } catch {
        reject(new Error(`s3rver printed an unexpected line ${JSON.stringify(line)}: ${stderr()}`));
      }
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start s3rver: ${err.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited during startup (code ${code}, signal ${signal}): ${stderr()}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Closing stdin asks for a clean shutdown; SIGKILL is the fallback if it hangs.
  child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
