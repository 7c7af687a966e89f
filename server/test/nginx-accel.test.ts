/**
 * Local storage behind nginx: larder checks access, then hands the file to nginx with
 * X-Accel-Redirect, and real Nix pushes and pulls through nginx.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, closureSummary, type NixEnv } from "./support/nix.ts";
import { missing, requireTool, which } from "./support/requirements.ts";
import { freePort } from "./support/daemon.ts";

// Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
const NGINX = which("nginx") ?? (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);
const ready = requireTool("nix", "Nix pushes and pulls through nginx") && (NGINX !== null || missing("nginx is not installed", "X-Accel-Redirect needs a real nginx"));
const PREFIX = "/_larder-storage/";

describe.skipIf(!ready)("NAR downloads handed to nginx", () => {
  let l: Larder;
  let nix: NixEnv;
  let nginx: ChildProcess;
  let front: string;

  beforeAll(async () => {
    l = await startLarder("sqlite-local", { accelRedirect: PREFIX });
    nix = await createNixEnv();
    const dir = join(l.dir.path, "nginx");
    await mkdir(join(dir, "tmp"), { recursive: true });
    const port = await freePort();
    const storage = (l.config.storage as { path: string }).path;
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
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location ${PREFIX} { internal; alias ${storage}/; }
    location / {
      proxy_pass ${l.url};
      proxy_request_buffering off;
      proxy_set_header Host $host;
    }
  }
}
`,
    );
    nginx = spawn(NGINX as string, ["-p", dir, "-c", conf, "-e", `${dir}/error.log`], { stdio: "ignore" });
    front = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`${front}/`);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  afterAll(async () => {
    nginx?.kill("SIGQUIT");
    await l?.stop();
    await nix?.cleanup();
  });

  it("answers larder's own NAR GET with an empty X-Accel-Redirect, after the access check", async () => {
    await createTestCache(l, "x");
    const token = await l.token({ pull: ["x"], push: ["x"] });
    await nix.setToken(l.url, token);
    const top = await nix.buildClosure(`accel-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${l.url}/x?compression=zstd`, top]);
    const hash = top.slice(11, 43);
    const narinfo = await (await fetch(`${l.url}/x/${hash}.narinfo`, { headers: { authorization: `Bearer ${token}` } })).text();
    const url = /^URL: (.*)$/m.exec(narinfo)?.[1] as string;
    const direct = await fetch(`${l.url}/x/${url}`, { headers: { authorization: `Bearer ${token}` } });
    expect(direct.status).toBe(200);
    expect(direct.headers.get("x-accel-redirect")).toMatch(new RegExp(`^${PREFIX}nar/`));
    expect((await direct.arrayBuffer()).byteLength).toBe(0);
    // Without rights, no redirect is ever handed out.
    const stranger = await fetch(`${l.url}/x/${url}`);
    expect(stranger.status).toBe(401);
    expect(stranger.headers.get("x-accel-redirect")).toBeNull();
    // Through nginx: the bytes, their length and ranges come from the file.
    const size = Number(/^FileSize: (\d+)$/m.exec(narinfo)?.[1]);
    const full = await fetch(`${front}/x/${url}`, { headers: { authorization: `Bearer ${token}` } });
    expect(full.status).toBe(200);
    expect((await full.arrayBuffer()).byteLength).toBe(size);
    const part = await fetch(`${front}/x/${url}`, { headers: { authorization: `Bearer ${token}`, range: "bytes=0-9" } });
    expect(part.status).toBe(206);
    expect((await part.arrayBuffer()).byteLength).toBe(10);
    // The internal location is not reachable from outside.
    expect((await fetch(`${front}${PREFIX}${direct.headers.get("x-accel-redirect")?.slice(PREFIX.length)}`)).status).toBe(404);
  });

  it("lets real Nix push and pull through nginx with the cache key as the only trusted key", async () => {
    const pub = await createTestCache(l, "front");
    const token = await l.token({ pull: ["front"], push: ["front"] });
    await nix.setToken(front, token);
    const top = await nix.buildClosure(`front-${randomBytes(3).toString("hex")}`);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${front}/front?compression=zstd`, top]);
    const dst = nix.freshStore("via-nginx");
    await nix.nix(["nix", "copy", "--from", `${front}/front`, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
  });
});
