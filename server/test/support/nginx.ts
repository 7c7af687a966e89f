/** A real nginx in the foreground, all its files under one directory, for tests that put it in front of larderd. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort } from "./free-port.ts";
import { which } from "./requirements.ts";

// Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
export const NGINX = which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);

export interface Nginx {
  readonly url: string;
  readonly port: number;
  stop(): void;
}

/** Starts nginx with `servers(port)` (server blocks) inside its http block; resolves once it answers. */
export async function startNginx(dir: string, servers: (port: number) => string): Promise<Nginx> {
  if (NGINX === null) throw new Error("nginx is not installed");
  await mkdir(join(dir, "tmp"), { recursive: true });
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/f; uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;
${servers(port)}
}
`,
  );
  const child = spawn(NGINX, ["-p", dir, "-c", conf, "-e", `${dir}/error.log`], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${url}/`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, port, stop: () => child.kill("SIGQUIT") };
}
