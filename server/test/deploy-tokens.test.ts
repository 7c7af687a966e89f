/**
 * Deploy and agent tokens: make-token's --deploy, --agent and --agent-group, the claims they
 * write (attic's layout plus larder's keys, which attic ignores), and what the server reads back.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir, type TempDir } from "./support/tmp.ts";
import { AGENT_GROUP_CLAIM } from "../src/api/deploy-types.ts";
import { buildClaims, signClaims, tokenKeys, verifyToken } from "../src/auth/tokens.ts";
import { permissionsFor } from "../src/auth/permissions.ts";

const BIN = new URL("../bin/larderd.js", import.meta.url).pathname;
const run = promisify(execFile);
let dir: TempDir | undefined;
afterAll(() => dir?.cleanup());

describe("deploy tokens", () => {
  it("make-token writes dp and ag grants and the agent group, and refuses an agent token without one group", async () => {
    dir = await makeTempDir("deploy-tokens");
    const cfg = join(dir.path, "s.toml");
    await writeFile(cfg, `[database]\nurl = "sqlite://${dir.path}/db"\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 1).toString("base64")}"\n`);
    const env = { PATH: process.env.PATH ?? "", HOME: dir.path, XDG_CONFIG_HOME: join(dir.path, "config"), XDG_DATA_HOME: join(dir.path, "data") };
    const mk = (args: string[]) => run(process.execPath, [BIN, "make-token", "--config", cfg, "--sub", "ci", "--validity", "1d", ...args], { env });
    const deploy = decodeJwt((await mk(["--deploy", "prod-*", "--pull", "prod-*"])).stdout.trim().split("\n").at(-1) as string);
    expect(deploy["https://jwt.attic.rs/v1"]).toEqual({ caches: { "prod-*": { r: 1, dp: 1 } } });
    expect(deploy[AGENT_GROUP_CLAIM]).toBeUndefined();
    const agent = decodeJwt((await mk(["--agent", "prod", "--agent-group", "web"])).stdout.trim().split("\n").at(-1) as string);
    expect(agent["https://jwt.attic.rs/v1"]).toEqual({ caches: { prod: { ag: 1 } } });
    expect(agent[AGENT_GROUP_CLAIM]).toBe("web");
    const refusals: [string[], RegExp][] = [
      [["--agent", "prod"], /--agent needs --agent-group/],
      [["--pull", "prod", "--agent-group", "web"], /--agent-group is only meaningful with --agent/],
      [["--agent", "prod", "--agent-group", "Web Servers"], /is not a group name/],
    ];
    for (const [args, message] of refusals) {
      const r = await mk(args).catch((e: { stderr: string }) => e);
      expect((r as { stderr: string }).stderr).toMatch(message);
    }
  });

  it("reads the group back only when it is a valid group name, and grants nothing else with ag", async () => {
    const keys = tokenKeys({ alg: "HS256", secret: new Uint8Array(40).fill(7) });
    const good = await verifyToken(keys, await signClaims(keys, buildClaims({ sub: "h", validitySeconds: 60, grants: { agent: ["c"] }, agentGroup: "web" })));
    expect(good.agentGroup).toBe("web");
    expect(permissionsFor(good.caches, "c")).toMatchObject({ agent: true, pull: false, push: false, deploy: false });
    const bogus = { ...buildClaims({ sub: "h", validitySeconds: 60, grants: { agent: ["c"] } }), [AGENT_GROUP_CLAIM]: "../etc" };
    expect((await verifyToken(keys, await signClaims(keys, bogus))).agentGroup).toBeUndefined();
  });
});
