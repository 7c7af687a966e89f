/**
 * The reference: Debian's nginx serving a flat `nix copy --to file://` directory, started by the
 * bench on loopback with its own prefix and config. One worker process, like one larderd
 * process, so the comparison is per core; the load generator gets the other core.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { freePort, waitForHttp } from "./proc.ts";

export interface Nginx {
  /** Base URL of the cache, without a trailing slash (e.g. http://127.0.0.1:1234/bench). */
  cacheUrl: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startNginx(bin: string, dir: string, flatDir: string, cacheName: string): Promise<Nginx> {
  await mkdir(join(dir, "tmp"), { recursive: true });
  // Workers drop to an unprivileged user when started as root: they must be able to read the files.
  for (const d of new Set([dirname(dir), dir, dirname(flatDir), flatDir])) await chmod(d, 0o755);
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  const tmp = (n: string) => `${n}_temp_path ${join(dir, "tmp", n)};`;
  await writeFile(
    conf,
    `worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  ${tmp("client_body")} ${tmp("proxy")} ${tmp("fastcgi")} ${tmp("uwsgi")} ${tmp("scgi")}
  types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; application/x-nix-nar nar zst xz; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location /${cacheName}/ { alias ${flatDir}/; }
  }
}
`,
  );
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", conf, "-e", join(dir, "error.log")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const cacheUrl = `http://127.0.0.1:${port}/${cacheName}`;
  try {
    await waitForHttp(`${cacheUrl}/nix-cache-info`, 10_000, () => (child.exitCode !== null ? `nginx exited: ${stderr.trim()}` : undefined));
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    cacheUrl,
    pid: child.pid as number,
    async stop() {
      if (child.exitCode !== null) return;
      // SIGQUIT is nginx's graceful stop; the master waits for its worker.
      child.kill("SIGQUIT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
