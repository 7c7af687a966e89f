/**
 * larder deploy, server side, driven through the HTTP API as agents and operators use it (one
 * larderd per backend; every test uses its own environment). The agent side with real
 * Nix and real agent processes is tested in the agent's own suite.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Backend, type Larder } from "./support/larder.ts";
import { postgresAvailable } from "./support/postgres.ts";
import { baseName, call, mint, operator, pushPath, TestAgent } from "./support/deploy.ts";
import { expireAllObjects, gcAYearOn } from "./support/gc.ts";
import type { AgentDesired } from "../src/api/deploy-types.ts";

let l: Larder;
let deployToken: string;
let webToken: string;
let dbToken: string;

async function setUp(backend: Backend): Promise<void> {
  l = await startLarder(backend);
  await createTestCache(l, "fleet");
  await createTestCache(l, "other");
  deployToken = await mint(l, { deploy: ["fleet"] }, undefined, "ci");
  webToken = await mint(l, { agent: ["fleet"] }, "web");
  dbToken = await mint(l, { agent: ["fleet"] }, "db");
}

/** A small release: an app referring to a library, both pushed. */
async function release(tag: string): Promise<string> {
  const lib = await pushPath(l, "fleet", `lib-${tag}`);
  return pushPath(l, "fleet", `app-${tag}`, [baseName(lib)]);
}

function agents(env: string, n: number, token = webToken, prefix = "web"): TestAgent[] {
  return Array.from({ length: n }, (_, i) => new TestAgent(l.url, token, "fleet", env, `${prefix}-${i + 1}`));
}

/** Every agent polls once and reports what it runs, as a starting agent does. */
async function register(list: TestAgent[], current: string | null): Promise<void> {
  for (const a of list) {
    expect((await a.desired()).status).toBe(200);
    expect((await a.report(null, "idle", current)).status).toBe(200);
  }
}

async function prefetch(list: TestAgent[], id: number, current: string | null): Promise<void> {
  for (const a of list) expect((await a.report(id, "prefetched", current)).status).toBe(200);
}

/** An agent's whole turn once its slot is granted: activate, check, report healthy. */
async function switchTo(a: TestAgent, id: number, target: string): Promise<void> {
  expect((await a.report(id, "activating", target)).status).toBe(200);
  expect((await a.report(id, "healthy", target, { log: `switched to ${target}` })).status).toBe(200);
}

describe.each(BACKENDS)("larder deploy on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("larder deploy on PostgreSQL");
  beforeAll(async () => {
    if (!skip) await setUp(backend);
  }, 60_000);
  afterAll(() => l?.stop());

  describe.skipIf(skip)("refusals", () => {
    it("refuses a target whose closure misses a path, naming it, and tells no agent", async () => {
      const lib = await pushPath(l, "fleet", "lib-missing");
      const app = await pushPath(l, "fleet", "app-missing", [baseName(lib)]);
      const del = await call(l.url, l.rootToken, "DELETE", `/_api/v1/cache/fleet/path/${baseName(lib).slice(0, 32)}?force=true`);
      expect(del.status).toBe(200);
      const op = operator(l.url, deployToken, "fleet", "refuse-missing");
      const r = await op.activate({ targets: { "*": app } });
      expect(r.status).toBe(422);
      expect(r.body).toMatchObject({ code: 422, error: "ClosureIncomplete", missing: [lib], unsigned: [] });
      expect((r.body as any).message).toMatch(/1 path is not in the cache/);
      const [a] = agents("refuse-missing", 1);
      expect((await a!.desired()).body.deployment).toBeNull();
    });

    it("refuses a path whose stored signature does not verify under the cache's key", async () => {
      const app = await release("tampered");
      const op = operator(l.url, deployToken, "fleet", "refuse-unsigned");
      // A first activation signs the closure; then the stored size no longer matches what was signed.
      expect((await op.activate({ targets: { "*": app } })).status).toBe(200);
      const row = await l.server.ctx.db.kysely.selectFrom("object").select(["id", "refs"]).where("store_path", "=", app).executeTakeFirstOrThrow();
      await l.server.ctx.db.kysely.updateTable("object").set({ refs: "[]" }).where("id", "=", row.id).execute();
      const r = await op.activate({ targets: { "*": app }, supersede: true });
      expect(r.status).toBe(422);
      expect(r.body).toMatchObject({ error: "ClosureIncomplete", missing: [], unsigned: [app] });
    });

    it("refuses callers without the permission, agent tokens of another cache, and agents posing as another group", async () => {
      const app = await release("perm");
      const pushOnly = await mint(l, { push: ["fleet"], pull: ["fleet"] });
      expect((await operator(l.url, pushOnly, "fleet", "perm").activate({ targets: { "*": app } })).status).toBe(403);
      // An agent token cannot deploy, and a deploy token cannot act as an agent.
      expect((await operator(l.url, webToken, "fleet", "perm").activate({ targets: { "*": app } })).status).toBe(403);
      expect((await new TestAgent(l.url, deployToken, "fleet", "perm", "x").desired()).status).toBe(403);
      const otherCache = await mint(l, { agent: ["other"] }, "web");
      const stranger = new TestAgent(l.url, otherCache, "fleet", "perm", "web-1");
      expect((await stranger.desired()).status).toBe(401);
      expect((await stranger.report(null, "idle", null)).status).toBe(401);
      // An agent token minted without a group opens nothing.
      const groupless = await mint(l, { agent: ["fleet"] });
      expect((await new TestAgent(l.url, groupless, "fleet", "perm", "web-1").desired()).status).toBe(403);
      // A name belongs to the group that registered it.
      const web1 = new TestAgent(l.url, webToken, "fleet", "perm", "host-1");
      expect((await web1.report(null, "idle", null)).status).toBe(200);
      const impostor = new TestAgent(l.url, dbToken, "fleet", "perm", "host-1");
      const r = await impostor.report(null, "healthy", app);
      expect(r.status).toBe(403);
      expect((r.body as any).message).toContain('belongs to group "web"');
      const st = await operator(l.url, deployToken, "fleet", "perm").status();
      expect(st.body.agents.find((a) => a.name === "host-1")).toMatchObject({ group: "web", state: "idle" });
    });

    it("refuses an agent report whose current path is not a store path of the cache, and records nothing of it", async () => {
      const app = await release("paths");
      const host = new TestAgent(l.url, webToken, "fleet", "paths", "host-p");
      expect((await host.report(null, "idle", app)).status).toBe(200);
      for (const bad of ["/etc", "/nix/store", "/nix/store/../etc/passwd", "/other/store/" + app.slice("/nix/store/".length), `${app}/bin/serve`, "relative-x"]) {
        const r = await host.report(null, "idle", bad);
        expect(r.status, bad).toBe(400);
        expect((r.body as any).message).toContain("currentPath");
      }
      const st = await operator(l.url, deployToken, "fleet", "paths").status();
      expect(st.body.agents.find((a) => a.name === "host-p")).toMatchObject({ state: "idle", currentPath: app });
    });

    it("keeps the reserved pin names out of the pins API", async () => {
      const app = await release("pins");
      const put = await call(l.url, l.rootToken, "PUT", "/_api/v1/pins/fleet/deploy.prod.target.x", { store_path: app });
      expect(put.status).toBe(400);
      expect((await call(l.url, l.rootToken, "DELETE", "/_api/v1/pins/fleet/deploy.prod.target.x")).status).toBe(400);
    });

    it("answers 409 while a rollout runs, unless supersede", async () => {
      const [v1, v2] = [await release("c1"), await release("c2")];
      const op = operator(l.url, deployToken, "fleet", "conflict");
      await register(agents("conflict", 1), null);
      expect((await op.activate({ targets: { "*": v1 } })).status).toBe(200);
      expect((await op.activate({ targets: { "*": v2 } })).status).toBe(409);
      const r = await op.activate({ targets: { "*": v2 }, supersede: true });
      expect(r.status).toBe(200);
      const hist = await op.history();
      expect(hist.body.deployments.map((d: any) => d.state)).toEqual(["prefetching", "superseded"]);
    });
  });

  describe.skipIf(skip)("rollout", () => {
    it("rolls three agents one at a time, runs the migration once, and records history and logs", async () => {
      const [v1, v2] = [await release("r1"), await release("r2")];
      const env = "rolling";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 3);
      await register(fleet, v1);
      const act = await op.activate({ targets: { "*": v2 }, rollout: { maxUnavailable: 1, migration: { command: ["bin/migrate"] } }, message: "release 2" });
      expect(act.status).toBe(200);
      const id = act.body.current!.id;
      expect(act.body.current).toMatchObject({ state: "prefetching", migration: "pending", createdBy: "ci", message: "release 2" });
      const desired = (await fleet[0]!.desired()).body;
      expect(desired.deployment).toMatchObject({ id, target: v2, previous: v1, activation: { kind: "system" }, migration: { command: ["bin/migrate"] } });
      expect(desired.substituter.url).toMatch(/\/fleet$/);
      expect(desired.substituter.publicKey).toMatch(/^fleet:/);
      // No slot before everyone has the closure.
      const early = await fleet[0]!.slot(id);
      expect(early.body).toMatchObject({ granted: false });
      expect(early.body.reason).toMatch(/prefetch/);
      await prefetch(fleet, id, v1);
      const first = await fleet[0]!.slot(id);
      expect(first.body).toMatchObject({ granted: true, runMigration: true });
      // The others wait for the migration, then for the slot.
      for (const a of fleet.slice(1)) {
        const r = await a.slot(id);
        expect(r.body.granted).toBe(false);
        expect(r.body.reason).toMatch(/migration/);
      }
      expect((await fleet[0]!.migration(id, true, "migrated")).status).toBe(200);
      expect((await fleet[1]!.slot(id)).body).toMatchObject({ granted: false });
      await switchTo(fleet[0]!, id, v2);
      for (const a of fleet.slice(1)) {
        const g = await a.slot(id);
        expect(g.body).toMatchObject({ granted: true, runMigration: false });
        await switchTo(a, id, v2);
      }
      const st = await op.status();
      expect(st.body.current).toMatchObject({ id, state: "succeeded", migration: "succeeded" });
      expect(st.body.agents.every((a) => a.state === "healthy" && a.currentPath === v2 && !a.holdsSlot)).toBe(true);
      const logs = await op.logs(id);
      expect(logs.body.logs.filter((x: any) => x.step === "migration")).toHaveLength(1);
      expect(logs.body.logs.filter((x: any) => x.step === "health-check")).toHaveLength(3);
      const metrics = await (await fetch(`${l.url}/metrics`)).text();
      expect(metrics).toMatch(/larder_deployments_total\{outcome="succeeded"\} [1-9]/);
      expect(metrics).toMatch(/larder_deploy_agents\{state="healthy"\} [1-9]/);
      expect(metrics).toMatch(/larder_deploy_rollout_duration_seconds_count\{outcome="succeeded"\} [1-9]/);
    });

    it("never grants more than max-unavailable slots or more than one migration to concurrent requests", async () => {
      const v = await release("conc");
      const env = "concurrent";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 12);
      await register(fleet, null);
      const id = (await op.activate({ targets: { "*": v }, rollout: { maxUnavailable: "25%", migration: { command: ["m"] } } })).body.current!.id;
      await prefetch(fleet, id, null);
      let grants = await Promise.all(fleet.map((a) => a.slot(id)));
      expect(grants.filter((g) => g.body.runMigration)).toHaveLength(1);
      expect(grants.filter((g) => g.body.granted)).toHaveLength(1);
      const migrator = fleet[grants.findIndex((g) => g.body.runMigration)]!;
      expect((await migrator.migration(id, true)).status).toBe(200);
      grants = await Promise.all(fleet.map((a) => a.slot(id)));
      // 25% of 12 agents: three out of service at once, the migrator among them.
      expect(grants.filter((g) => g.body.granted)).toHaveLength(3);
      expect(grants.some((g) => g.body.runMigration)).toBe(false);
      const st = await op.status();
      expect(st.body.agents.filter((a) => a.holdsSlot)).toHaveLength(3);
    });

    it("gives no other agent a slot until the canaries are healthy", async () => {
      const v = await release("canary");
      const env = "canary";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 4);
      await register(fleet, null);
      const id = (await op.activate({ targets: { "*": v }, rollout: { maxUnavailable: 3, canaries: 1 } })).body.current!.id;
      await prefetch(fleet, id, null);
      const grants = await Promise.all(fleet.map((a) => a.slot(id)));
      expect(grants.filter((g) => g.body.granted)).toHaveLength(1);
      const canary = fleet[grants.findIndex((g) => g.body.granted)]!;
      const others = fleet.filter((a) => a !== canary);
      expect((await others[0]!.slot(id)).body.reason).toMatch(/canar/);
      expect((await canary.report(id, "checking", v)).status).toBe(200);
      expect((await others[0]!.slot(id)).body.granted).toBe(false);
      await switchTo(canary, id, v);
      const after = await Promise.all(others.map((a) => a.slot(id)));
      expect(after.filter((g) => g.body.granted)).toHaveLength(3);
    });

    it("pauses on a failed health check, keeps the others where they are, and resumes", async () => {
      const [v1, v2] = [await release("f1"), await release("f2")];
      const env = "failing";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 3);
      await register(fleet, v1);
      const id = (await op.activate({ targets: { "*": v2 }, rollout: { canaries: 1 } })).body.current!.id;
      await prefetch(fleet, id, v1);
      const [canary, b, c] = fleet as [TestAgent, TestAgent, TestAgent];
      expect((await canary.slot(id)).body.granted).toBe(true);
      await canary.report(id, "checking", v2);
      const gen = (await canary.desired()).body.generation;
      await canary.report(id, "failed", v2, { message: "health check failed", log: "curl: connection refused" });
      await canary.report(id, "rolled-back", v1);
      const st = await op.status();
      expect(st.body.current).toMatchObject({ state: "paused" });
      expect(st.body.generation).toBeGreaterThan(gen);
      expect((await b.slot(id)).body.reason).toMatch(/paused/);
      expect((await b.desired()).body.deployment).toMatchObject({ state: "paused" });
      const logs = await op.logs(id, canary.name);
      expect(logs.body.logs.some((x: any) => !x.ok && x.log.includes("connection refused"))).toBe(true);
      // Pausing again is a conflict; resume lets the canary try again.
      expect((await op.pause()).status).toBe(409);
      expect((await op.resume()).body.current).toMatchObject({ state: "rolling" });
      expect((await canary.slot(id)).body.granted).toBe(true);
      await switchTo(canary, id, v2);
      for (const a of [b, c]) {
        expect((await a.slot(id)).body.granted).toBe(true);
        await switchTo(a, id, v2);
      }
      expect((await op.status()).body.current).toMatchObject({ state: "succeeded" });
    });

    it("with autoRollback tells every agent to return to its previous path", async () => {
      const [v1, v2] = [await release("ar1"), await release("ar2")];
      const env = "autorollback";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 2);
      await register(fleet, v1);
      const id = (await op.activate({ targets: { "*": v2 }, rollout: { autoRollback: true } })).body.current!.id;
      await prefetch(fleet, id, v1);
      const [a, b] = fleet as [TestAgent, TestAgent];
      expect((await a.slot(id)).body.granted).toBe(true);
      await switchTo(a, id, v2);
      expect((await b.slot(id)).body.granted).toBe(true);
      await b.report(id, "failed", v2, { message: "health check failed" });
      const d = (await a.desired()).body.deployment!;
      expect(d).toMatchObject({ state: "rolled-back", target: v2, previous: v1 });
      expect((await op.status()).body.current!.state).toBe("rolled-back");
    });

    it("with pauseOnFailure off carries on past a failed agent and ends failed", async () => {
      const v = await release("cont");
      const env = "carry-on";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 2);
      await register(fleet, null);
      const id = (await op.activate({ targets: { "*": v }, rollout: { pauseOnFailure: false } })).body.current!.id;
      await prefetch(fleet, id, null);
      const [a, b] = fleet as [TestAgent, TestAgent];
      expect((await a.slot(id)).body.granted).toBe(true);
      await a.report(id, "failed", v);
      expect((await a.slot(id)).body.granted).toBe(false);
      expect((await b.slot(id)).body.granted).toBe(true);
      await switchTo(b, id, v);
      expect((await op.status()).body.current).toMatchObject({ state: "failed" });
    });

    it("counts an agent that fails without a slot, and lets it try again after resume", async () => {
      const v = await release("noslot");
      const env = "noslot";
      const op = operator(l.url, deployToken, "fleet", env);
      const [a, b] = agents(env, 2) as [TestAgent, TestAgent];
      await register([a, b], null);
      const id = (await op.activate({ targets: { "*": v } })).body.current!.id;
      // a cannot run this activation at all (say, a profile it may not write): it says so at once.
      await a.report(id, "failed", null, { message: "this agent may not write /nix/var/nix/profiles/x" });
      expect((await op.status()).body.current).toMatchObject({ state: "paused" });
      expect((await op.status()).body.current!.id).toBe(id);
      await op.resume();
      expect((await op.status()).body.agents.find((x) => x.name === a.name)).toMatchObject({ state: "prefetched" });
      await b.report(id, "prefetched", null);
      for (const x of [a, b]) {
        expect((await x.slot(id)).body.granted).toBe(true);
        await switchTo(x, id, v);
      }
      expect((await op.status()).body.current).toMatchObject({ state: "succeeded" });
    });

    it("counts agents still switching for a replaced deployment as out of service", async () => {
      const [v1, v2] = [await release("sup1"), await release("sup2")];
      const env = "supersede";
      const op = operator(l.url, deployToken, "fleet", env);
      const [a, b] = agents(env, 2) as [TestAgent, TestAgent];
      await register([a, b], null);
      const first = (await op.activate({ targets: { "*": v1 } })).body.current!.id;
      await prefetch([a, b], first, null);
      expect((await a.slot(first)).body.granted).toBe(true);
      await a.report(first, "activating", v1);
      const second = (await op.activate({ targets: { "*": v2 }, supersede: true })).body.current!.id;
      await prefetch([b], second, null);
      // a fetched v2's closure meanwhile, and its heartbeat still reports the old step.
      await a.report(second, "prefetched", v1);
      await a.report(first, "activating", v1);
      // b may not go while a is still out of service (max-unavailable 1).
      const denied = await b.slot(second);
      expect(denied.body.granted).toBe(false);
      expect(denied.body.reason).toMatch(/out of service/);
      await a.report(first, "healthy", v1);
      expect((await b.slot(second)).body.granted).toBe(true);
    });

    it("targets groups separately and leaves agents of other groups alone", async () => {
      const [web, db] = [await release("gw"), await release("gd")];
      const env = "groups";
      const op = operator(l.url, deployToken, "fleet", env);
      const w = new TestAgent(l.url, webToken, "fleet", env, "w1");
      const d = new TestAgent(l.url, dbToken, "fleet", env, "d1");
      await register([w, d], null);
      const id = (await op.activate({ targets: { web, db: { storePath: db, activation: { kind: "profile", profile: "/nix/var/nix/profiles/db" } } } })).body.current!.id;
      expect((await w.desired()).body.deployment).toMatchObject({ target: web, activation: { kind: "system" } });
      expect((await d.desired()).body.deployment).toMatchObject({ target: db, activation: { kind: "profile" } });
      const onlyWeb = (await op.activate({ targets: { web }, supersede: true })).body.current!.id;
      expect(onlyWeb).toBeGreaterThan(id);
      expect((await d.desired()).body.deployment).toBeNull();
    });

    it("wakes a long poll as soon as the environment changes", async () => {
      const v = await release("poll");
      const env = "longpoll";
      const [a] = agents(env, 1) as [TestAgent];
      const first = await a.desired();
      const started = Date.now();
      const waiting = a.desired(first.body.generation, 30);
      await new Promise((r) => setTimeout(r, 300));
      await operator(l.url, deployToken, "fleet", env).activate({ targets: { "*": v } });
      const woke = await waiting;
      expect(Date.now() - started).toBeLessThan(5000);
      expect(woke.body.generation).toBeGreaterThan(first.body.generation);
      expect(woke.body.deployment?.target).toBe(v);
      // With nothing new, the poll waits out its time and answers with the same generation.
      const t0 = Date.now();
      const idle = await a.desired(woke.body.generation, 1);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(idle.body.generation).toBe(woke.body.generation);
    });

    it("rolls back to the deployment before, as a new deployment the history marks", async () => {
      const [v1, v2] = [await release("rb1"), await release("rb2")];
      const env = "rollback";
      const op = operator(l.url, deployToken, "fleet", env);
      const [a] = agents(env, 1) as [TestAgent];
      await register([a], null);
      const first = (await op.activate({ targets: { "*": v1 } })).body.current!.id;
      await prefetch([a], first, null);
      await a.slot(first);
      await switchTo(a, first, v1);
      const second = (await op.activate({ targets: { "*": v2 } })).body.current!.id;
      const rb = await op.rollback({});
      expect(rb.status).toBe(200);
      expect(rb.body.current).toMatchObject({ rollbackOf: first, targets: { "*": v1 }, migration: "none" });
      const desired: AgentDesired = (await a.desired()).body;
      expect(desired.deployment?.target).toBe(v1);
      const hist = (await op.history()).body.deployments;
      expect(hist.map((h: any) => [h.id, h.state])).toEqual([
        [rb.body.current!.id, "succeeded"],
        [second, "superseded"],
        [first, "succeeded"],
      ]);
    });
  });

  describe.skipIf(skip)("durability", () => {
    it("GC during a rollout keeps the target's and the previous release's closures", async () => {
      const [v1, v2] = [await release("gc1"), await release("gc2")];
      const unrelated = await release("gc-unrelated");
      const env = "gc";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 1);
      await register(fleet, v1);
      await op.activate({ targets: { "*": v2 } });
      await expireAllObjects(l);
      await gcAYearOn(l);
      // Asked of the database: the server keeps rendered narinfo answers for a while.
      const present = async (p: string) => ((await l.server.ctx.db.kysely.selectFrom("object").select("id").where("store_path", "=", p).executeTakeFirst()) ? 200 : 404);
      const closure = async (app: string) => {
        const row = await l.server.ctx.db.kysely.selectFrom("object").select("refs").where("store_path", "=", app).executeTakeFirstOrThrow();
        return [app, ...(JSON.parse(row.refs) as string[]).map((r) => `/nix/store/${r}`)];
      };
      for (const p of [...(await closure(v1)), ...(await closure(v2))]) expect(await present(p)).toBe(200);
      expect(await present(unrelated)).toBe(404);
      // The pins follow the releases: a new deployment moves them, so v1 is left to retention.
      const pins = async () => ((await call(l.url, l.rootToken, "GET", "/_api/v1/pins/fleet")).body.pins as { name: string; store_path: string }[]).filter((p) => p.name.startsWith(`deploy.${env}.`));
      expect((await pins()).map((p) => [p.name.split(".")[2], p.store_path]).sort()).toEqual([["previous", v1], ["target", v2]]);
      // Once the agent runs v2, a new release makes v2 the rollback target and leaves v1 to retention.
      const id = (await op.status()).body.current!.id;
      await prefetch(fleet, id, v1);
      expect((await fleet[0]!.slot(id)).body.granted).toBe(true);
      await switchTo(fleet[0]!, id, v2);
      const v3 = await release("gc3");
      expect((await op.activate({ targets: { "*": v3 } })).status).toBe(200);
      expect((await pins()).map((p) => [p.name.split(".")[2], p.store_path]).sort()).toEqual([["previous", v2], ["target", v3]]);
      await expireAllObjects(l);
      await gcAYearOn(l);
      expect(await present(v1)).toBe(404);
      expect(await present(v2)).toBe(200);
    });

    it("carries a rollout on across a server restart", async () => {
      const v = await release("restart");
      const env = "restart";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 2);
      await register(fleet, null);
      const id = (await op.activate({ targets: { "*": v }, rollout: { migration: { command: ["m"] } } })).body.current!.id;
      await prefetch(fleet, id, null);
      const [a, b] = fleet as [TestAgent, TestAgent];
      expect((await a.slot(id)).body).toMatchObject({ granted: true, runMigration: true });
      await l.restart();
      // The migration is still a's, the slot still held.
      expect((await b.slot(id)).body.reason).toMatch(/migration/);
      expect((await a.slot(id)).body).toMatchObject({ granted: true, runMigration: true });
      await a.migration(id, true);
      await switchTo(a, id, v);
      expect((await b.slot(id)).body.granted).toBe(true);
      await switchTo(b, id, v);
      expect((await op.status()).body.current).toMatchObject({ state: "succeeded", migration: "succeeded" });
    });

    // Ten seconds of waiting, once: the sweep is the same code on both databases.
    if (backend === "sqlite-local") it("takes the slot from an agent silent past agentTimeoutSeconds and pauses", async () => {
      const v = await release("timeout");
      const env = "timeout";
      const op = operator(l.url, deployToken, "fleet", env);
      const fleet = agents(env, 2);
      await register(fleet, null);
      const id = (await op.activate({ targets: { "*": v }, rollout: { agentTimeoutSeconds: 10 } })).body.current!.id;
      await prefetch(fleet, id, null);
      const [a, b] = fleet as [TestAgent, TestAgent];
      expect((await a.slot(id)).body).toMatchObject({ granted: true, leaseSeconds: 10 });
      // b keeps polling (alive), a says nothing more.
      const deadline = Date.now() + 20_000;
      let st = (await op.status()).body;
      while (Date.now() < deadline && !st.agents.some((x) => x.name === a.name && x.state === "lost")) {
        await new Promise((r) => setTimeout(r, 1000));
        await b.desired();
        st = (await op.status()).body;
      }
      expect(st.agents.find((x) => x.name === a.name)).toMatchObject({ state: "lost", holdsSlot: false });
      expect(st.current).toMatchObject({ state: "paused" });
      expect(st.current!.id).toBe(id);
      expect((await op.resume()).status).toBe(200);
      expect((await b.slot(id)).body.granted).toBe(true);
    }, 30_000);
  });
});
