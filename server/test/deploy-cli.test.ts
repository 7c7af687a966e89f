/**
 * `larder deploy` as CI and operators run it: its own process, a token from `larder login`,
 * agents driven through the HTTP API beside it. Output is checked as a CI log sees it (no TTY).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { baseName, call, mint, pushPath, TestAgent } from "./support/deploy.ts";
import { larderCli, type RunResult } from "./support/client.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

let l: Larder;
let dir: TempDir;
let larder: ReturnType<typeof larderCli>;
let agentToken: string;

beforeAll(async () => {
  l = await startLarder("sqlite-local");
  await createTestCache(l, "fleet");
  dir = await makeTempDir("deploy-cli");
  const env = { PATH: process.env.PATH ?? "", HOME: dir.path, XDG_CONFIG_HOME: join(dir.path, "config") };
  larder = larderCli(env);
  const login = await larder(["login", "main", l.url, await mint(l, { deploy: ["fleet"], pull: ["fleet"] }, undefined, "ci")]);
  expect(login.code).toBe(0);
  agentToken = await mint(l, { agent: ["fleet"] }, "web");
});
afterAll(async () => {
  await l?.stop();
  await dir?.cleanup();
});

async function release(tag: string): Promise<string> {
  const lib = await pushPath(l, "fleet", `lib-${tag}`);
  return pushPath(l, "fleet", `app-${tag}`, [baseName(lib)]);
}

/** Plays agents through their turn as soon as a deployment shows up; `fail` makes the first one's health check fail. */
async function playAgents(env: string, names: string[], opts: { fail?: boolean } = {}): Promise<void> {
  const agents = names.map((n) => new TestAgent(l.url, agentToken, "fleet", env, n));
  let d = (await agents[0]!.desired()).body;
  // Wait for the rollout the command under test starts (an earlier one may still be current).
  while (d.deployment?.state !== "prefetching") d = (await agents[0]!.desired(d.generation, 10)).body;
  const { id, target } = d.deployment;
  for (const a of agents) await a.report(id, "prefetched", null);
  for (const [i, a] of agents.entries()) {
    let g = await a.slot(id);
    while (!g.body.granted) {
      if (/paused/.test(g.body.reason ?? "")) return;
      await new Promise((r) => setTimeout(r, 100));
      g = await a.slot(id);
    }
    if (g.body.runMigration) await a.migration(id, true, "migrated 3 tables");
    await a.report(id, "activating", target);
    if (opts.fail && i === 0) {
      await a.report(id, "failed", target, { message: "health check failed", log: "GET /health: 503" });
      return;
    }
    await a.report(id, "healthy", target, { log: "ok" });
  }
}

const ESC = "\x1b";

describe("larder deploy", () => {
  it("refuses a target whose closure is incomplete, listing what is missing", async () => {
    const lib = await pushPath(l, "fleet", "lib-gone");
    const app = await pushPath(l, "fleet", "app-gone", [baseName(lib)]);
    await call(l.url, l.rootToken, "DELETE", `/_api/v1/cache/fleet/path/${baseName(lib).slice(0, 32)}?force=true`);
    const r = await larder(["deploy", "activate", "fleet", "refused", app]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`missing:  ${lib}`);
    expect(r.stderr).toMatch(/larder push fleet/);
    const none = await larder(["deploy", "status", "fleet", "nowhere"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/No environment "nowhere" in cache "fleet"/);
  });

  it("activates with rollout flags, follows the rollout with --wait and exits 0 when it succeeded", async () => {
    const v = await release("cli1");
    const run = larder(["deploy", "activate", "fleet", "staging", v, "--max-unavailable", "1", "--migration", "bin/migrate --yes", "--health-url", "http://localhost:8080/health", "-m", "CI run 7", "--wait"]);
    await playAgents("staging", ["web-1", "web-2"]);
    const r: RunResult = await run;
    expect(r.stderr).not.toContain(ESC);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/deployment \d+ of fleet\/staging started: \* → /);
    expect(r.stdout).toMatch(/deployment \d+ succeeded/);
    expect(r.stderr).toMatch(/web-2: healthy/);
    const status = await larder(["deploy", "status", "fleet", "staging", "--json"]);
    const s = JSON.parse(status.stdout);
    expect(s.current.rollout).toMatchObject({ maxUnavailable: 1, migration: { command: ["bin/migrate", "--yes"] }, healthCheck: { url: "http://localhost:8080/health" } });
    expect(s.current.message).toBe("CI run 7");
    const logs = await larder(["deploy", "logs", "fleet", "staging"]);
    expect(logs.stdout).toMatch(/migration ok\nmigrated 3 tables/);
  });

  it("exits 2 when the rollout pauses, and resume, pause, history and rollback say what they did", async () => {
    const v = await release("cli2");
    const run = larder(["deploy", "activate", "fleet", "staging", v, "--wait"]);
    await playAgents("staging", ["web-1", "web-2"], { fail: true });
    const r = await run;
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/paused; fix the cause, then larder deploy resume fleet staging/);
    const resumed = await larder(["deploy", "resume", "fleet", "staging"]);
    expect(resumed.stdout).toMatch(/is rolling/);
    expect((await larder(["deploy", "pause", "fleet", "staging"])).stdout).toMatch(/is paused/);
    const again = await larder(["deploy", "pause", "fleet", "staging"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no rollout of "staging" is running/);
    const rb = await larder(["deploy", "rollback", "fleet", "staging"]);
    expect(rb.code).toBe(0);
    expect(rb.stdout).toMatch(/rolls back to deployment \d+/);
    const hist = await larder(["deploy", "history", "fleet", "staging"]);
    const lines = hist.stdout.trim().split("\n");
    // web-1 still runs the failed release, so the rollback has a host to move.
    expect(lines[0]).toMatch(/\tprefetching\t.*\trollback-of \d+\t\*=/);
    expect(lines[1]).toMatch(/\tsuperseded\t/);
  });

  it("reads a deploy.json with per-group targets, and flags override its rollout", async () => {
    const [web, db] = [await release("jw"), await release("jd")];
    const file = join(dir.path, "deploy.json");
    await writeFile(file, JSON.stringify({ targets: { web, db: { storePath: db, activation: { kind: "service", unit: "db" } } }, rollout: { maxUnavailable: 3, canaries: 1 } }));
    const r = await larder(["deploy", "activate", "fleet", "json", file, "--max-unavailable", "50%"]);
    expect(r.code).toBe(0);
    const s = JSON.parse((await larder(["deploy", "status", "fleet", "json", "--json"])).stdout);
    expect(s.current.targets).toEqual({ web, db });
    expect(s.current.rollout).toMatchObject({ maxUnavailable: "50%", canaries: 1 });
    expect(s.current.migration).toBe("pending");
    const bad = await larder(["deploy", "activate", "fleet", "json", file, "--canaries", "two"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--canaries must be a whole number/);
    const typo = join(dir.path, "typo.json");
    await writeFile(typo, JSON.stringify({ targets: { web }, rollout: { maxUnavailabel: 2 } }));
    expect((await larder(["deploy", "activate", "fleet", "json", typo])).stderr).toMatch(/unknown field maxUnavailabel/);
  });
});

describe("progress on a terminal", () => {
  it("redraws the status in place rather than appending", async () => {
    const { Follower } = await import("../src/client/deploy.ts");
    const { Writable } = await import("node:stream");
    const chunks: string[] = [];
    const sink = new Writable({ write: (c, _e, done) => (chunks.push(String(c)), done()) });
    const f = new Follower(sink, true);
    const status = (state: string) => ({
      cache: "fleet",
      environment: "prod",
      generation: 1,
      current: { id: 1, environment: "prod", state, targets: { "*": "/nix/store/00000000000000000000000000000000-app" }, rollbackOf: null, message: null, createdBy: "ci", createdAt: "x", finishedAt: null, migration: "none", rollout: {} },
      agents: [{ name: "web-1", group: "web", state: "activating", currentPath: null, deploymentId: 1, lastSeenAt: "x", holdsSlot: true, message: null }],
    });
    f.show(status("rolling") as never);
    f.show(status("succeeded") as never);
    expect(chunks[0]).not.toMatch(/\x1b\[\d+F/);
    // Four lines drawn (head, target, counts, one agent): the second draw goes up four and clears.
    expect(chunks[1]!.startsWith("\x1b[4F\x1b[J")).toBe(true);
    expect(chunks[1]).toContain("deployment 1 succeeded");
  });
});
