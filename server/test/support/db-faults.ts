/**
 * Database faults under load, shared by the tests that apply them (server/test/db-faults.test.ts,
 * server/test/aws-secret-refresh.test.ts): superuser statements against the cluster, and a run of
 * 8 pushing and pulling clients around a fault, checked for what the clients saw and what is served.
 */
import pg from "pg";
import { expect } from "vitest";
import type { Daemon } from "./daemon.ts";
import { checkServed, startLoad, type Answer, type Load } from "./load.ts";
import type { PostgresCluster } from "./postgres-cluster.ts";

export async function admin<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

export const terminateLarder = (cluster: PostgresCluster) =>
  admin(cluster.url, "select pg_terminate_backend(pid) from pg_stat_activity where usename = 'larder' and pid <> pg_backend_pid()");

/** Answers other than 200 and 503 (a 500, a dropped connection, a timeout). */
const unexpected = (answers: Answer[]) => answers.filter((a) => a.status !== 200 && a.status !== 503);

/**
 * Runs the load, applies `fault`, and checks: the daemon did not exit, nothing but 200 and 503
 * was answered, it served again within `recoverWithinMs` with no tail of failures, and every
 * acknowledged push is served whole. Returns how long recovery took and how many 503s were seen.
 */
export async function underLoad(
  target: { daemon: Daemon; token: string; cache: string },
  fault: () => Promise<void>,
  opts: { recoverWithinMs: number },
): Promise<{ tookMs: number; failed: number; total: number }> {
  const { daemon, token, cache } = target;
  const load: Load = startLoad(daemon.url, token, cache, 8);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const before = load.answers.length;
    expect(before).toBeGreaterThan(0);
    expect(load.answers.filter((a) => a.status !== 200), "before the fault").toEqual([]);
    const started = Date.now();
    await fault();
    const tookMs = await load.recovered(Date.now(), opts.recoverWithinMs);
    const back = Date.now();
    // Serving again means serving: no tail of failures once a request has succeeded.
    await new Promise((r) => setTimeout(r, 1500));
    await load.stop();
    expect(daemon.child.exitCode, daemon.output()).toBeNull();
    expect(unexpected(load.answers), daemon.output().slice(-3000)).toEqual([]);
    const late = load.answers.filter((a) => a.at > back + 1000 && a.status !== 200);
    expect(late, "answers after recovery").toEqual([]);
    const failed = load.answers.filter((a) => a.at >= started && a.status === 503).length;
    const problems = await checkServed(daemon.url, token, cache, load.pushed);
    expect(problems).toEqual([]);
    return { tookMs, failed, total: load.answers.length };
  } finally {
    await load.stop();
  }
}
