/**
 * `node bench/accel-redirect.ts`: NAR download of a 200 MiB NAR (stored as zstd) from nginx
 * serving the file itself, from larder behind the same nginx with `nginx-accel-redirect`, and
 * from larder streaming it itself; one curl at a time, best of three, ratios against nginx.
 * Needs nginx (Debian: /usr/sbin/nginx) and curl; runs as root (nginx's `user root`).
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/config/load.ts";
import { startServer } from "../src/server.ts";
import { buildClaims, signClaims } from "../src/auth/tokens.ts";
import { createCache } from "../src/db/caches.ts";
import { formatSecretKey, generateSecretKey } from "../src/nix/signing.ts";
import { tokens, lengthPrefix, padding, NAR_MAGIC } from "../src/nix/nar-encode.ts";
import { encodeNixBase32 } from "../src/nix/base32.ts";
import { pino } from "pino";

const dir = mkdtempSync(join(tmpdir(), "accel-"));
const size = 200 * 1024 * 1024;
// semi-compressible: random letters
const raw = randomBytes(size); for (let i = 0; i < size; i++) raw[i] = 97 + (raw[i]! & 15);
const nar = Buffer.concat([tokens(NAR_MAGIC, "(", "type", "regular", "contents"), lengthPrefix(size), raw, padding(size), tokens(")")]);
const narHash = createHash("sha256").update(nar).digest();
const fileHash = encodeNixBase32(narHash);
const cfgToml = `listen = "127.0.0.1:0"\n[database]\nurl = "sqlite://${dir}/db"\n[storage]\ntype = "local"\npath = "${dir}/storage"\nnginx-accel-redirect = "/_s/"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${randomBytes(40).toString("base64")}"\n[log]\nlevel = "silent"\n`;
const config = parseConfig(cfgToml, {});
const server = await startServer(config, { log: pino({ level: "silent" }) });
await createCache(server.ctx.db, { name: "b", keypair: formatSecretKey(generateSecretKey("b")), isPublic: true, storeDir: "/nix/store", priority: 41, upstreamCacheKeyNames: [], retentionPeriod: null });
const token = await signClaims(server.ctx.tokens, buildClaims({ sub: "b", validitySeconds: 3600, grants: { push: ["b"], pull: ["b"] } }));
const h = "0".repeat(31) + "1";
let r = await fetch(`${server.url}/b/nar/${fileHash}.nar`, { method: "PUT", body: nar, headers: { authorization: `Bearer ${token}` } });
console.log("put nar", r.status, await r.text());
const ni = `StorePath: /nix/store/${h}-big\nURL: nar/${fileHash}.nar\nCompression: none\nNarHash: sha256:${fileHash}\nNarSize: ${nar.length}\nReferences: \n`;
r = await fetch(`${server.url}/b/${h}.narinfo`, { method: "PUT", body: ni, headers: { authorization: `Bearer ${token}` } });
console.log("put narinfo", r.status, await r.text());
const served = await (await fetch(`${server.url}/b/${h}.narinfo`)).text();
const url = /^URL: (.*)$/m.exec(served)![1];
const port = 18000 + Math.floor(Math.random() * 1000);
mkdirSync(join(dir, "ng/tmp"), { recursive: true });
writeFileSync(join(dir, "ng/nginx.conf"), `user root; worker_processes 1; daemon off; pid ${dir}/ng/pid; error_log ${dir}/ng/err warn; events {} http { access_log off; sendfile on; client_body_temp_path ${dir}/ng/tmp/b; proxy_temp_path ${dir}/ng/tmp/p; fastcgi_temp_path ${dir}/ng/tmp/f; uwsgi_temp_path ${dir}/ng/tmp/u; scgi_temp_path ${dir}/ng/tmp/s; server { listen 127.0.0.1:${port}; location /_s/ { internal; alias ${dir}/storage/; } location /flat/ { alias ${dir}/storage/; } location / { proxy_pass ${server.url}; } } }`);
const ng = spawn("/usr/sbin/nginx", ["-p", join(dir, "ng"), "-c", join(dir, "ng/nginx.conf")], { stdio: "inherit" });
await new Promise((res) => setTimeout(res, 500));
const key = (await server.ctx.db.kysely.selectFrom("nar").select("storage_key").executeTakeFirstOrThrow()).storage_key;
import { promisify } from "node:util";
import { execFile } from "node:child_process";
const best: Record<string, number> = {};
async function time(label: string, u: string) {
  const out = (await promisify(execFile)("curl", ["-s", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}", u])).stdout.split(" ");
  const mib = Number(out[1]) / 1048576;
  best[label] = Math.max(best[label] ?? 0, mib);
  console.log(label, "bytes", out[0], "MiB/s", mib.toFixed(0));
}
for (let i = 0; i < 3; i++) {
  await time("nginx flat file        ", `http://127.0.0.1:${port}/flat/${key}`);
  await time("larder via X-Accel     ", `http://127.0.0.1:${port}/b/${url}`);
}
// larder streaming itself (accel off)
const direct = await startServer({ ...config, accelRedirectPrefix: undefined, listen: { host: "127.0.0.1", port: 0 } } as never, { log: pino({ level: "silent" }) });
for (let i = 0; i < 3; i++) await time("larder streaming itself", `${direct.url}/b/${url}`);
const ref = best["nginx flat file        "] as number;
for (const [label, v] of Object.entries(best)) console.log(`best ${label.trim()}: ${v.toFixed(0)} MiB/s, ${(v / ref).toFixed(2)}x nginx`);
ng.kill("SIGQUIT"); await server.close(); await direct.close();
process.exit(0);
