/**
 * Local storage behind nginx: larder checks access, then hands the file to nginx with
 * X-Accel-Redirect, and real Nix pushes and pulls through nginx.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, closureSummary, type NixEnv } from "./support/nix.ts";
import { missing, requireTool } from "./support/requirements.ts";
import { NGINX, startNginx, type Nginx } from "./support/nginx.ts";
const ready = requireTool("nix", "Nix pushes and pulls through nginx") && (NGINX !== null || missing("nginx is not installed", "X-Accel-Redirect needs a real nginx"));
const PREFIX = "/_larder-storage/";

describe.skipIf(!ready)("NAR downloads handed to nginx", () => {
  let l: Larder;
  let nix: NixEnv;
  let nginx: Nginx;
  let front: string;

  beforeAll(async () => {
    l = await startLarder("sqlite-local", { accelRedirect: PREFIX });
    nix = await createNixEnv();
    const storage = (l.config.storage as { path: string }).path;
    nginx = await startNginx(
      join(l.dir.path, "nginx"),
      (port) => `  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location ${PREFIX} { internal; alias ${storage}/; }
    location / {
      proxy_pass ${l.url};
      proxy_request_buffering off;
      proxy_set_header Host $host;
    }
  }`,
    );
    front = nginx.url;
  });
  afterAll(async () => {
    nginx?.stop();
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
