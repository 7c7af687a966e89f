/**
 * The scaled-out deployment's health check end to end, minus AWS: the request an ALB target group
 * sends (the stacks' health_check path, Host = the target's private address) through a real nginx
 * set up as the aws-host profile sets it up (the cache's virtual host, made the default server in
 * load-balancer mode, forwarding Host as larder.nix does) to a real larderd that only allows the
 * cache's name. Without `default_server`, another virtual host listed first takes the check.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEALTH_CHECK_PATH } from "../../stacks/src/constructs/scale-out.ts";
import { startLarder, type Larder } from "./support/larder.ts";
import { NGINX, startNginx, type Nginx } from "./support/nginx.ts";
import { rawRequest } from "./support/raw-http.ts";
import { missing } from "./support/requirements.ts";

const ready = NGINX !== null || missing("nginx is not installed", "the load balancer's check goes through a real nginx");

/** A vhost listed before the cache's, as NixOS may add (e.g. a status page on localhost), then the cache's. */
function servers(larderUrl: string, defaultServer: boolean): (port: number) => string {
  return (port) => `  server { listen 127.0.0.1:${port}; server_name localhost; location / { return 404; } }
  server {
    listen 127.0.0.1:${port}${defaultServer ? " default_server" : ""};
    server_name cache.example.com;
    location / {
      proxy_pass ${larderUrl};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }`;
}

describe.skipIf(!ready)("the load balancer's health check through nginx", () => {
  let l: Larder;
  const fronts: Nginx[] = [];
  let asProfile: string;
  let withoutDefault: string;

  beforeAll(async () => {
    l = await startLarder("sqlite-local", { extraToml: `allowed-hosts = ["cache.example.com"]` });
    fronts.push(await startNginx(join(l.dir.path, "nginx-default"), servers(l.url, true)));
    fronts.push(await startNginx(join(l.dir.path, "nginx-plain"), servers(l.url, false)));
    asProfile = fronts[0]?.url ?? "";
    withoutDefault = fronts[1]?.url ?? "";
  });
  afterAll(async () => {
    for (const front of fronts) front.stop();
    await l?.stop();
  });

  const get = (front: string, path: string, host: string) => rawRequest(front, [`GET ${path} HTTP/1.1`, `Host: ${host}`, "Connection: close"]);

  it("answers the ALB's check, whose Host is the target's address, with 200", async () => {
    expect(HEALTH_CHECK_PATH).toBe("/_api/v1/health/live");
    for (const host of ["10.0.3.17", "10.0.3.17:80"]) {
      const r = await get(asProfile, HEALTH_CHECK_PATH, host);
      expect(r.status, host).toBe(200);
      expect(r.json()).toEqual({ status: "ok" });
    }
  });

  it("keeps the host check on every other route behind the same nginx", async () => {
    const r = await get(asProfile, "/_api/v1/cache-config/main", "10.0.3.17");
    expect(r.status).toBe(400);
    expect(r.text).toContain("Bad Host");
    expect((await get(asProfile, "/_api/v1/cache-config/main", "cache.example.com")).status).not.toBe(400);
  });

  it("needs the cache's virtual host to be nginx's default: otherwise the check never reaches larderd", async () => {
    expect((await get(withoutDefault, HEALTH_CHECK_PATH, "10.0.3.17")).status).toBe(404);
    expect((await get(withoutDefault, HEALTH_CHECK_PATH, "cache.example.com")).status).toBe(200);
  });
});
