/** `larderd storage …`: what is stored where, and moving it (drain a backend, rebalance, rename). */
import { pino } from "pino";
import type { Config } from "../config/load.ts";
import { openDb, type Db } from "../db/connect.ts";
import { backendUsage, drainingBackends, recordedBackends, renameBackend, setDraining } from "../db/storage-backends.ts";
import { createLogger } from "../log.ts";
import { openStoragePool, type StoragePool } from "../storage/pool.ts";
import { drainBackend, rebalance, targetBytes, type MoveDeps, type MoveReport } from "../storage/move.ts";

type Out = (line: string) => void;

async function withPool<T>(config: Config, fn: (d: MoveDeps & { pool: StoragePool; db: Db }) => Promise<T>, checkpoint?: MoveDeps["checkpoint"]): Promise<T> {
  // Progress and errors go to stderr; stdout carries the command's answer only.
  const log = createLogger({ level: config.logLevel, base: { service: "larderd", command: "storage" } }, pino.destination({ dest: 2, sync: true }));
  const db = await openDb(config.database);
  try {
    await db.migrate();
    const pool = await openStoragePool(config.storageSetup, { db, log });
    try {
      return await fn({ db, pool, log, ...(checkpoint && { checkpoint }) });
    } finally {
      pool.close();
    }
  } finally {
    await db.close();
  }
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

export async function storageStatus(config: Config, out: Out): Promise<void> {
  await withPool(config, async ({ db, pool }) => {
    const usage = await backendUsage(db);
    const draining = await drainingBackends(db);
    const pending = await db.kysely
      .selectFrom("storage_journal")
      .select(["backend", "kind", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy(["backend", "kind"])
      .execute();
    const targets = targetBytes(pool, new Map([...usage].map(([n, u]) => [n, u.bytes])));
    out(`strategy: ${pool.setup.placement.strategy}`);
    for (const b of pool.backends) {
      const u = usage.get(b.name) ?? { bytes: 0, nars: 0 };
      const del = pending.filter((p) => p.backend === b.name && p.kind === "delete").reduce((n, p) => n + Number(p.n), 0);
      const up = pending.filter((p) => p.backend === b.name && p.kind === "upload").reduce((n, p) => n + Number(p.n), 0);
      out(
        [
          `${b.name} (${b.config.storage.type}${draining.has(b.name) ? ", draining" : ""}):`,
          `${u.nars} NARs, ${gib(u.bytes)} stored`,
          b.config.capacity !== undefined ? `of ${gib(b.config.capacity)}` : "",
          `share ${gib(targets.get(b.name) ?? 0)}`,
          del > 0 ? `${del} old copies to delete` : "",
          up > 0 ? `${up} writes in progress` : "",
        ].filter(Boolean).join(" "),
      );
    }
  });
}

function printReport(out: Out, r: MoveReport, dryRun: boolean, retireAfterSeconds: number): void {
  if (dryRun) {
    for (const [where, p] of r.plan) out(`would move ${p.objects} objects (${gib(p.bytes)}) to ${where}`);
    if (r.plan.size === 0) out("nothing to move");
    return;
  }
  out(`moved ${r.moved} objects (${gib(r.bytes)}); ${r.failed} failed`);
  if (r.moved > 0) out(`old copies are deleted by the garbage collector ${retireAfterSeconds / 60} minutes after each move (storage.retire-after)`);
}

export async function storageDrain(config: Config, name: string, o: { dryRun: boolean; undo: boolean; waitMs: number }, out: Out, checkpoint?: MoveDeps["checkpoint"]): Promise<number> {
  return withPool(config, async (d) => {
    d.pool.get(name);
    if (o.undo) {
      if (!o.dryRun) await setDraining(d.db, name, false);
      out(`${o.dryRun ? "would accept" : "accepts"} new objects on "${name}" again`);
      return 0;
    }
    // Servers reread the flag with their usage; wait that long before the last objects are looked for.
    const r = await drainBackend(d, name, { dryRun: o.dryRun, settleMs: o.dryRun ? 0 : o.waitMs });
    printReport(out, r, o.dryRun, d.pool.setup.retireAfterSeconds);
    if (o.dryRun) return 0;
    if (r.remaining > 0 || r.inFlight > 0) {
      out(`"${name}" still holds ${r.remaining} objects (${r.inFlight} writes were in progress); run the drain again`);
      return 1;
    }
    out(`"${name}" holds no objects; remove it from server.toml once \`larderd storage status\` shows no old copies left to delete`);
    return 0;
  }, checkpoint);
}

export async function storageRebalance(config: Config, o: { dryRun: boolean }, out: Out, checkpoint?: MoveDeps["checkpoint"]): Promise<number> {
  return withPool(config, async (d) => {
    const r = await rebalance(d, { dryRun: o.dryRun });
    printReport(out, r, o.dryRun, d.pool.setup.retireAfterSeconds);
    return r.failed > 0 ? 1 : 0;
  }, checkpoint);
}

/** Renames a backend in the database only (the config is the operator's to change alongside). */
export async function storageRenameBackend(config: Config, from: string, to: string, o: { dryRun: boolean }, out: Out): Promise<number> {
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(to)) throw new Error(`invalid backend name "${to}": use 1-32 of a-z 0-9 _ -, starting with a letter or digit`);
  const db = await openDb(config.database);
  try {
    await db.migrate();
    const recorded = await recordedBackends(db);
    if (!recorded.has(from)) {
      out(`the database names no backend "${from}" (it names: ${[...recorded].join(", ") || "none"})`);
      return 1;
    }
    if (recorded.has(to)) throw new Error(`the database already has objects on a backend named "${to}": renaming "${from}" to it would merge two backends`);
    if (!config.storageSetup.backends.some((b) => b.name === to)) out(`note: server.toml names no backend "${to}" yet; larderd will not start until it does`);
    if (o.dryRun) {
      out(`would rename backend "${from}" to "${to}"`);
      return 0;
    }
    const n = await renameBackend(db, from, to);
    out(`renamed backend "${from}" to "${to}" (${n} rows)`);
    return 0;
  } finally {
    await db.close();
  }
}
