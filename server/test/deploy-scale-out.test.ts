/**
 * larder deploy in scale-out: two `larderd --mode api-server` processes on one PostgreSQL, agents
 * talking to either. The guarantees must come from the database alone: at most maxUnavailable
 * agents out of service, one migration, and a long poll on one server woken by a change made
 * through the other.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import type { Daemon } from "./support/daemon.ts";
import { baseName, mint, operator, pushPath, startApiServers, TestAgent } from "./support/deploy.ts";

const ready = postgresAvailable("deploy coordination across api-servers needs PostgreSQL");

describe.skipIf(!ready)("deploy across two api-servers on PostgreSQL", () => {
  let l: Larder;
  let servers: Daemon[] = [];
  let deployToken: string;
  let agentToken: string;

  beforeAll(async () => {
    l = await startLarder("postgres-s3");
    await createTestCache(l, "fleet");
    servers = await startApiServers(l, 2);
    deployToken = await mint(l, { deploy: ["fleet"] }, undefined, "ci");
    agentToken = await mint(l, { agent: ["fleet"] }, "web");
  }, 60_000);
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await l?.stop();
  });

  async function release(tag: string): Promise<string> {
    const lib = await pushPath(l, "fleet", `lib-${tag}`);
    return pushPath(l, "fleet", `app-${tag}`, [baseName(lib)]);
  }

  it("keeps max-unavailable and one migration with agents split across both servers", async () => {
    const v = await release("scale");
    const env = "scale";
    const fleet = Array.from({ length: 10 }, (_, i) => new TestAgent(servers[i % 2]!.url, agentToken, "fleet", env, `web-${i + 1}`));
    for (const a of fleet) await a.report(null, "idle", null);
    const act = await operator(servers[0]!.url, deployToken, "fleet", env).activate({ targets: { "*": v }, rollout: { maxUnavailable: 2, migration: { command: ["bin/migrate"] } } });
    expect(act.status).toBe(200);
    const id = act.body.current!.id;
    for (const a of fleet) await a.report(id, "prefetched", null);

    let out = 0;
    let most = 0;
    const migrators = new Set<string>();
    // Each agent alternates servers on every request, as behind a round-robin load balancer.
    const turn = async (a: TestAgent, i: number): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        a.url = servers[(i + attempt) % 2]!.url;
        const g = await a.slot(id);
        expect(g.status).toBe(200);
        if (!g.body.granted) {
          await new Promise((r) => setTimeout(r, 20 + Math.random() * 60));
          continue;
        }
        // Counted between the grant reaching the agent and its healthy report leaving it: a
        // subset of the server's slot holders, so never more than maxUnavailable.
        out++;
        most = Math.max(most, out);
        expect(out).toBeLessThanOrEqual(2);
        if (g.body.runMigration) {
          migrators.add(a.name);
          await new Promise((r) => setTimeout(r, 100));
          a.url = servers[(i + attempt + 1) % 2]!.url;
          expect((await a.migration(id, true)).status).toBe(200);
        }
        await a.report(id, "activating", v);
        await new Promise((r) => setTimeout(r, Math.random() * 50));
        out--;
        a.url = servers[(i + attempt + 1) % 2]!.url;
        expect((await a.report(id, "healthy", v)).status).toBe(200);
        return;
      }
    };
    await Promise.all(fleet.map((a, i) => turn(a, i)));
    expect(migrators.size).toBe(1);
    expect(most).toBe(2);
    const st = await operator(servers[1]!.url, deployToken, "fleet", env).status();
    expect(st.body.current).toMatchObject({ state: "succeeded", migration: "succeeded" });
    expect(st.body.agents.every((a) => a.state === "healthy" && !a.holdsSlot)).toBe(true);
  }, 60_000);

  it("wakes a long poll on one server when the other server changes the environment", async () => {
    const v = await release("wake");
    const env = "wake";
    const a = new TestAgent(servers[1]!.url, agentToken, "fleet", env, "web-1");
    const first = (await a.desired()).body;
    const waiting = a.desired(first.generation, 30);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await operator(servers[0]!.url, deployToken, "fleet", env).activate({ targets: { "*": v } });
    const woke = (await waiting).body;
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(woke.deployment?.target).toBe(v);
  }, 40_000);
});
