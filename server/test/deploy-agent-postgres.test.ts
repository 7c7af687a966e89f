/**
 * Real agents in scale-out: two `larderd --mode api-server` processes on one PostgreSQL, three
 * `larder agent` processes split across them. The one-migration and max-unavailable guarantees
 * must hold when the agents' requests land on different servers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { requireTool } from "./support/requirements.ts";
import type { Daemon } from "./support/daemon.ts";
import { startApiServers } from "./support/deploy.ts";
import { agentLogs, ServiceSampler, settled, startFleet, waitForStatus, type Fleet } from "./support/agent-fleet.ts";

const ready = requireTool("nix-build", "deploy agents fetch closures built by the real Nix 2.8") && postgresAvailable("scale-out deploys coordinate through PostgreSQL");

describe.skipIf(!ready)("deploy agents across two api-servers on PostgreSQL", () => {
  let l: Larder;
  let servers: Daemon[] = [];
  let f: Fleet;

  beforeAll(async () => {
    l = await startLarder("postgres-s3");
    await createTestCache(l, "fleet");
    servers = await startApiServers(l, 2);
    const [a, b] = servers.map((s) => s.url) as [string, string];
    f = await startFleet(l, "fleet", "prod", [a, b, a], b);
  }, 150_000);

  afterAll(async () => {
    await f?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    await l?.stop();
  });

  it("rolls v1 → v2 with one migration and at most one agent out of service", async () => {
    const sampler = new ServiceSampler(f.agents);
    const id = await f.activate("v2");
    const done = await waitForStatus(f.status, settled(id), f.agents);
    await sampler.stop();
    expect(sampler.mostDown(), await agentLogs(f.agents)).toBe(1);
    for (const a of done.agents) expect(a).toMatchObject({ state: "healthy", currentPath: f.path("v2") });
    const ran = await f.migrations();
    expect(ran.filter((m) => m.startsWith("v1 "))).toHaveLength(1);
    expect(ran.filter((m) => m.startsWith("v2 "))).toHaveLength(1);
    expect(new Set(f.agents.map((a) => a.url)).size).toBe(2);
  }, 90_000);
});
