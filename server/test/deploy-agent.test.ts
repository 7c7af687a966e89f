/**
 * larder deploy end to end with real agents: three `larder agent` processes, each with its own
 * chroot store, fetching releases of a small HTTP service (built by Nix 2.8, bin/serve and
 * bin/migrate) from one larderd on SQLite, and running them under the process supervisor. A
 * sampler fetches every service's /health all along: that, not the server's bookkeeping, is
 * what "at most one out of service" is checked against.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnvironmentStatus } from "../src/api/deploy-types.ts";
import { LARDER_BIN } from "./support/client.ts";
import { mint, operator, pushPath } from "./support/deploy.ts";
import { makeTempDir } from "./support/tmp.ts";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { requireTool } from "./support/requirements.ts";
import { agentLogs, serviceVersion, ServiceSampler, settled, startFleet, waitForStatus, waitUntil, writeTokenFile, type Fleet } from "./support/agent-fleet.ts";

const ready = requireTool("nix-build", "deploy agents fetch closures built by the real Nix 2.8");

describe.skipIf(!ready)("deploy agents end to end (SQLite)", () => {
  let l: Larder;
  let f: Fleet;

  beforeAll(async () => {
    l = await startLarder("sqlite-local");
    await createTestCache(l, "fleet");
    f = await startFleet(l, "fleet", "prod", [l.url, l.url, l.url]);
  }, 150_000);

  afterAll(async () => {
    await f?.stop();
    await l?.stop();
  });

  it("rolls v1 → v2 one agent at a time, runs the migration once, and records the history", async () => {
    const sampler = new ServiceSampler(f.agents);
    const id = await f.activate("v2");
    const done = await waitForStatus(f.status, settled(id), f.agents);
    await sampler.stop();
    expect(sampler.mostDown(), await agentLogs(f.agents)).toBe(1);
    for (const a of f.agents) {
      expect(sampler.samples.at(-1)!.versions.get(a.name)).toBe("v2");
      expect(done.agents.find((x) => x.name === a.name)).toMatchObject({ state: "healthy", currentPath: f.path("v2"), holdsSlot: false });
    }
    const ran = await f.migrations();
    expect(ran.filter((m) => m.startsWith("v1 "))).toHaveLength(1);
    expect(ran.filter((m) => m.startsWith("v2 "))).toHaveLength(1);
    expect(done.current).toMatchObject({ migration: "succeeded", message: "release v2" });
    const hist = await f.op.history();
    expect(hist.body.deployments.slice(0, 2).map((d: any) => [d.id, d.state, d.targets["*"]])).toEqual([
      [id, "succeeded", f.path("v2")],
      [id - 1, "succeeded", f.path("v1")],
    ]);
    const logs = (await f.op.logs(id)).body.logs;
    for (const a of f.agents) {
      expect(logs.some((x: any) => x.agent === a.name && x.step === "activation" && x.ok && x.log.includes("nix-env"))).toBe(true);
      expect(logs.some((x: any) => x.agent === a.name && x.step === "health-check" && x.ok && x.log.includes("/health: 200 v2"))).toBe(true);
    }
    expect(logs.filter((x: any) => x.step === "migration")).toHaveLength(1);
  }, 90_000);

  it("rolls the canary back when v3 fails its health check, pauses, keeps the others on v2; v4 then completes across a server restart", async () => {
    const sampler = new ServiceSampler(f.agents);
    // As an operator runs it: --wait follows the rollout and exits 2 when it pauses.
    const v3 = await f.larder(["deploy", "activate", "ops:fleet", "prod", f.path("v3"), "--activation", "service:web", "--canaries", "1", "--health-command", "bin/check", "--health-timeout", "3", "--agent-timeout", "10", "-m", "release v3", "--wait"]);
    expect(v3.code, v3.stderr).toBe(2);
    const id = (await f.status()).body.current!.id;
    // A moment more: a paused rollout hands out no slot, however long the others wait.
    await new Promise((r) => setTimeout(r, 3000));
    await sampler.stop();
    const now = (await f.status()).body;
    expect(now.current).toMatchObject({ id, state: "paused" });
    const canary = now.agents.find((a) => a.state === "rolled-back")!;
    expect(canary).toMatchObject({ currentPath: f.path("v2"), holdsSlot: false });
    for (const a of f.agents.filter((x) => x.name !== canary.name)) {
      expect(sampler.versionsOf(a.name)).toEqual(new Set(["v2"]));
      expect(now.agents.find((x) => x.name === a.name)?.currentPath).toBe(f.path("v2"));
    }
    expect(sampler.versionsOf(canary.name)).toEqual(new Set(["v2", "v3"]));
    expect(sampler.samples.at(-1)!.versions.get(canary.name)).toBe("v2");
    expect(sampler.mostDown()).toBe(1);
    const logs = (await f.op.logs(id, canary.name)).body.logs;
    expect(logs.some((x: any) => x.step === "health-check" && !x.ok && x.log.includes("/health: 503 v3"))).toBe(true);
    expect(logs.some((x: any) => x.step === "rollback" && x.ok)).toBe(true);

    // The fix ships as v4, replacing the paused v3; the server restarts half-way through.
    const sampler4 = new ServiceSampler(f.agents);
    const id4 = await f.activate("v4", { supersede: true });
    await waitForStatus(f.status, (s) => s.agents.some((a) => a.state === "healthy" && a.currentPath === f.path("v4")), f.agents);
    await l.restart();
    const done = await waitForStatus(f.status, settled(id4), f.agents);
    await sampler4.stop();
    expect(sampler4.mostDown()).toBe(1);
    for (const a of done.agents) expect(a).toMatchObject({ state: "healthy", currentPath: f.path("v4") });
    const ran = await f.migrations();
    expect(ran.filter((m) => m.startsWith("v3 "))).toHaveLength(1);
    expect(ran.filter((m) => m.startsWith("v4 "))).toHaveLength(1);
  }, 90_000);

  it("frees the slot of an agent killed mid-activation, pauses, takes it off the unverified release when it returns; resume completes", async () => {
    const before = new Map((await f.status()).body.agents.map((a) => [a.name, a.currentPath]));
    const sampler = new ServiceSampler(f.agents);
    // v5 takes 4 s to start listening: its agent spends that long switching and checking.
    const id = await f.activate("v5");
    const switching = await waitForStatus(f.status, (s) => s.current?.id === id && s.agents.some((a) => a.state === "checking" || a.state === "activating"), f.agents);
    const victimName = switching.agents.find((a) => a.state === "checking" || a.state === "activating")!.name;
    const victim = f.agents.find((a) => a.name === victimName)!;
    await victim.kill("SIGKILL");
    const lost = await waitForStatus(f.status, (s) => s.current?.state === "paused" && s.agents.some((a) => a.name === victimName && a.state === "lost"), f.agents, 40_000);
    expect(lost.agents.find((a) => a.name === victimName)?.holdsSlot).toBe(false);
    // Back after the crash: killed before its profile moved, it reports the turn failed; after, it switches back first.
    await victim.restart();
    await waitForStatus(f.status, (s) => s.agents.some((a) => a.name === victimName && (a.state === "rolled-back" || a.state === "failed") && a.currentPath === before.get(victimName)), f.agents);
    await waitUntil(async () => (await serviceVersion(victim)) === "v4", f.agents);
    for (const a of f.agents.filter((x) => x !== victim)) expect(sampler.versionsOf(a.name).has("v5")).toBe(false);
    const resumed = await f.larder(["deploy", "resume", "ops:fleet", "prod"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const done = await waitForStatus(f.status, settled(id), f.agents, 60_000);
    await sampler.stop();
    for (const a of done.agents) expect(a).toMatchObject({ state: "healthy", currentPath: f.path("v5") });
    expect(sampler.mostDown()).toBe(1);
    expect((await f.migrations()).filter((m) => m.startsWith("v5 "))).toHaveLength(1);
  }, 120_000);

  it("a failed migration pauses the rollout with every agent still on its release; after the fix, resume runs the migration again and completes", async () => {
    const dir = await makeTempDir("deploy-migration");
    try {
      const fixed = join(dir.path, "fixed");
      const attempts = join(dir.path, "attempts");
      const before = new Map((await f.status()).body.agents.map((a) => [a.name, a.currentPath]));
      // Fails until the operator "fixes" it (creates the file); every attempt leaves a line.
      const script = `echo attempt >> '${attempts}'; test -e '${fixed}'`;
      const id = await f.activate("v1", { rollout: { migration: { command: ["/bin/sh", "-c", script] } } });
      const paused = await waitForStatus(f.status, (s) => s.current?.id === id && s.current.state === "paused" && s.current.migration === "failed", f.agents, 60_000);
      for (const a of paused.agents) expect(a.currentPath).toBe(before.get(a.name));
      await writeFile(fixed, "");
      const resumed = await f.larder(["deploy", "resume", "ops:fleet", "prod"]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const done = await waitForStatus(f.status, settled(id), f.agents, 60_000);
      expect(done.current).toMatchObject({ state: "succeeded", migration: "succeeded" });
      for (const a of done.agents) expect(a).toMatchObject({ state: "healthy", currentPath: f.path("v1") });
      // Run once before the fix and once after it (by whichever agent gets the first slot), never twice after.
      expect((await readFile(attempts, "utf8")).trim().split("\n")).toHaveLength(2);
    } finally {
      await dir.cleanup();
    }
  }, 150_000);
});

describe.skipIf(!ready)("services.larder-agent's command line (nixos-modules/agent-args.nix)", () => {
  it("is one `larder agent` accepts: the agent registers, and fails a deployment of a kind it does not allow without touching anything", async () => {
    const l = await startLarder("sqlite-local");
    const dir = await makeTempDir("agent-module");
    let child: ChildProcess | undefined;
    try {
      await createTestCache(l, "fleet");
      const tokenFile = join(dir.path, "token");
      await writeFile(join(dir.path, "nix.conf"), "build-users-group =\n");
      await writeTokenFile(tokenFile, await mint(l, { agent: ["fleet"], pull: ["fleet"] }, "web"));
      const module = fileURLToPath(new URL("../../nixos-modules/agent-args.nix", import.meta.url));
      const input = {
        larder: "larder", cache: "fleet", environment: "staging", serverUrl: `${l.url}/`, name: "nixos-host",
        stateDir: join(dir.path, "state"), allowedActivations: ["profile", "service"], profileRoots: [join(dir.path, "profiles")],
        supervisor: "process", serviceEnvironment: { PORT: "4000" }, serviceProperties: { DynamicUser: "yes" },
      };
      const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", `import ${module} (builtins.fromJSON ${JSON.stringify(JSON.stringify(input))})`], {
        env: { PATH: process.env.PATH, HOME: dir.path, NIX_STATE_DIR: join(dir.path, "nix-state"), NIX_CONF_DIR: dir.path, NIX_LOG_DIR: join(dir.path, "nix-log") },
        encoding: "utf8",
      });
      const args = JSON.parse(out) as string[];
      expect(args.slice(0, 4)).toEqual(["larder", "agent", "fleet", "staging"]);
      // As the unit runs it: the module's arguments, then the credential's path.
      child = spawn(process.execPath, [LARDER_BIN, ...args.slice(1), "--token-file", tokenFile], { env: { PATH: process.env.PATH ?? "" }, stdio: "ignore" });
      const op = operator(l.url, await mint(l, { deploy: ["fleet"] }), "fleet", "staging");
      const deadline = Date.now() + 20_000;
      let agents: EnvironmentStatus["agents"] = [];
      while (Date.now() < deadline && agents.length === 0) {
        agents = (await op.status()).body.agents ?? [];
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(agents).toMatchObject([{ name: "nixos-host", group: "web", state: "idle", currentPath: null }]);
      // A kind the host does not accept fails there, touching nothing, and pauses the rollout.
      const system = await pushPath(l, "fleet", "nixos-system");
      expect((await op.activate({ targets: { "*": system }, rollout: { agentTimeoutSeconds: 10 } })).status).toBe(200);
      while (Date.now() < deadline + 20_000) {
        const st = (await op.status()).body;
        if (st.current?.state === "paused") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const st = (await op.status()).body;
      expect(st.current?.state).toBe("paused");
      expect(st.agents).toMatchObject([{ name: "nixos-host", state: "failed", currentPath: null, holdsSlot: false }]);
      expect(st.agents[0]!.message).toContain('does not accept "system" activations');
    } finally {
      child?.kill("SIGTERM");
      await l.stop();
      await dir.cleanup();
    }
  }, 60_000);
});
