/**
 * Moving stored objects between backends (`larderd storage drain` / `rebalance`): copy, verify
 * the copy's SHA-256 by reading it back, switch the row to the copy in one compare-and-swap, and
 * journal the old copy for deletion only after `retire-after`, so presigned URLs already handed
 * out and downloads in flight still find it. The URL a narinfo names never changes (it is the
 * file hash), so no served narinfo ever points at a missing NAR. A kill at any point leaves an
 * "upload" journal entry for a copy nobody uses (GC removes it) or a finished move.
 */
import { createHash, randomBytes } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import type { Db } from "../db/connect.ts";
import { backendUsage, setDraining } from "../db/storage-backends.ts";
import { encodeNixBase32 } from "../nix/base32.ts";
import type { Backend, StoragePool } from "./pool.ts";
import { StorageError } from "./types.ts";

export interface MoveDeps {
  db: Db;
  pool: StoragePool;
  log: Logger;
  /** Moves at once. */
  concurrency?: number;
  now?: () => number;
  /** Called after a copy is verified and after the row is switched; tests kill the process there. */
  checkpoint?: (step: "copied" | "switched") => void;
}

/** One stored object: a NAR or a build log. */
export interface Movable {
  table: "nar" | "build_log";
  id: number;
  storage_key: string;
  backend: string;
  /** Bytes as stored, when the row knows them (NARs). */
  size?: number;
  /** Nix-base32 SHA-256 of the stored bytes, when the row knows it (NARs). */
  fileHash?: string;
}

export type MoveResult = "moved" | "changed" | "damaged";

export class CopyMismatchError extends StorageError {
  override name = "CopyMismatchError";
  /** The original is damaged (not the copy, nor the target's fault). */
  readonly source: boolean;
  constructor(message: string, source: boolean) {
    super(message);
    this.source = source;
  }
}

class Hasher extends Transform {
  readonly hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

async function hashOf(backend: Backend, key: string): Promise<{ hash: string; size: number }> {
  const h = new Hasher();
  await pipeline(await backend.storage.get(key), h, async (source: AsyncIterable<Buffer>) => {
    for await (const _ of source);
  });
  return { hash: encodeNixBase32(h.hash.digest()), size: h.size };
}

/** A new key beside the old one: same name, fresh random suffix, so the journal never confuses the two copies. */
export function copyKey(key: string): string {
  const slash = key.lastIndexOf("/");
  const base = key.slice(slash + 1);
  const dash = base.lastIndexOf("-");
  const dot = base.indexOf(".", dash < 0 ? 0 : dash);
  const stem = dash < 0 ? base.slice(0, dot < 0 ? undefined : dot) : base.slice(0, dash);
  const ext = dot < 0 ? "" : base.slice(dot);
  return `${key.slice(0, slash + 1)}${stem}-${randomBytes(4).toString("hex")}${ext}`;
}

/** Copies one object to `to`, verifies it, and points its row at the copy. */
export async function moveObject(d: MoveDeps, o: Movable, to: Backend, retireAfterSeconds: number): Promise<MoveResult> {
  const now = d.now ?? Date.now;
  const from = d.pool.get(o.backend);
  const key = copyKey(o.storage_key);
  await d.db.kysely.insertInto("storage_journal").values({ storage_key: key, kind: "upload", backend: to.name, created_at: now() }).execute();
  const drop = async () => {
    await to.storage.delete(key).catch(() => {});
    await d.db.kysely.deleteFrom("storage_journal").where("storage_key", "=", key).execute().catch(() => {});
  };
  try {
    const h = new Hasher();
    await pipeline(await from.storage.get(o.storage_key), h, async (source) => {
      await to.storage.put(key, source as unknown as import("node:stream").Readable);
    });
    const read = encodeNixBase32(h.hash.digest());
    // The source must be what the row says it is; a damaged original is reported, never spread.
    if (o.fileHash !== undefined && (read !== o.fileHash || h.size !== o.size)) {
      throw new CopyMismatchError(`${o.storage_key} on "${from.name}" does not match its recorded hash (read ${h.size} bytes, sha256 ${read}); left where it is`, true);
    }
    const copy = await hashOf(to, key);
    if (copy.hash !== read || copy.size !== h.size) {
      throw new CopyMismatchError(`the copy of ${o.storage_key} on "${to.name}" reads back differently (${copy.size} bytes, sha256 ${copy.hash}); not switched`, false);
    }
    d.checkpoint?.("copied");
    const switched = await d.db.kysely.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable(o.table)
        .set({ storage_key: key, backend: to.name })
        .where("id", "=", o.id)
        .where("storage_key", "=", o.storage_key)
        .where("backend", "=", from.name)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return false;
      await trx.deleteFrom("storage_journal").where("storage_key", "=", key).execute();
      const t = now();
      await trx
        .insertInto("storage_journal")
        .values({ storage_key: o.storage_key, kind: "delete", backend: from.name, size: h.size, created_at: t, delete_after: t + retireAfterSeconds * 1000 })
        .onConflict((oc) => oc.column("storage_key").doUpdateSet({ kind: "delete", delete_after: t + retireAfterSeconds * 1000 }))
        .execute();
      return true;
    });
    // GC took the row, or another mover switched it: ours is a spare copy.
    if (!switched) {
      await drop();
      return "changed";
    }
    d.checkpoint?.("switched");
    return "moved";
  } catch (e) {
    await drop();
    throw e;
  }
}

/** Stored objects on `backend`, by id, after a position; NARs, then build logs. */
export async function objectsOn(db: Db, backend: string, table: Movable["table"], afterId: number, limit: number): Promise<Movable[]> {
  if (table === "nar") {
    const rows = await db.kysely
      .selectFrom("nar")
      .select(["id", "storage_key", "backend", "file_size", "file_hash"])
      .where("backend", "=", backend)
      .where("id", ">", afterId)
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map((r) => ({ table, id: r.id, storage_key: r.storage_key, backend: r.backend, size: Number(r.file_size), fileHash: r.file_hash }));
  }
  const rows = await db.kysely
    .selectFrom("build_log")
    .select(["id", "storage_key", "backend"])
    .where("backend", "=", backend)
    .where("id", ">", afterId)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ table, id: r.id, storage_key: r.storage_key, backend: r.backend }));
}

export interface MoveReport {
  moved: number;
  bytes: number;
  failed: number;
  /** Objects still on the source when done (written meanwhile, or failed). */
  remaining: number;
  /** Uploads to the source still in progress (or dead and awaiting GC) when done. */
  inFlight: number;
  /** What would move (dry run): target → objects and bytes. */
  plan: Map<string, { objects: number; bytes: number }>;
}

async function runLimited<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
}

export interface DrainOptions {
  dryRun?: boolean;
  /** How long to wait after marking the backend draining, so every server's pool has seen it (their refresh interval). */
  settleMs?: number;
}

/**
 * Marks `name` draining (no server places new objects there once its pool refreshes) and moves
 * everything on it to the other backends by the server's placement.
 */
export async function drainBackend(d: MoveDeps, name: string, o: DrainOptions = {}): Promise<MoveReport> {
  d.pool.get(name);
  const targets = d.pool.placementFor(undefined).backends.filter((b) => b !== name);
  if (targets.length === 0) throw new Error(`cannot drain "${name}": no other backend to move its objects to; add one to [[storage.backends]] first`);
  const report: MoveReport = { moved: 0, bytes: 0, failed: 0, remaining: 0, inFlight: 0, plan: new Map() };
  if (!o.dryRun) {
    await setDraining(d.db, name, true);
    await d.pool.refresh();
    if (o.settleMs) await new Promise((r) => setTimeout(r, o.settleMs));
  }
  const failed = new Set<string>();
  for (const table of ["nar", "build_log"] as const) {
    let after = 0;
    for (;;) {
      const batch = await objectsOn(d.db, name, table, after, 100);
      if (batch.length === 0) break;
      after = (batch.at(-1) as Movable).id;
      if (o.dryRun) {
        for (const m of batch) {
          const target = `${targets.join(", ")} (by ${d.pool.placementFor(undefined).strategy})`;
          const p = report.plan.get(target) ?? { objects: 0, bytes: 0 };
          p.objects++;
          p.bytes += m.size ?? 0;
          report.plan.set(target, p);
        }
        continue;
      }
      await runLimited(batch, d.concurrency ?? 4, async (m) => {
        try {
          const { value } = await d.pool.write(undefined, m.size ?? 0, async (to): Promise<MoveResult> => {
            if (to.name === name) throw new Error(`refusing to move ${m.storage_key} onto the backend being drained`);
            try {
              return await moveObject(d, m, to, d.pool.setup.retireAfterSeconds);
            } catch (e) {
              // A damaged original is no fault of the target: do not mark it failing.
              if (e instanceof CopyMismatchError && e.source) {
                d.log.error({ err: e, key: m.storage_key, backend: name }, "stored object does not match its recorded hash; left where it is");
                return "damaged";
              }
              throw e;
            }
          });
          if (value === "moved") {
            report.moved++;
            report.bytes += m.size ?? 0;
          } else if (value === "damaged") report.failed++;
        } catch (e) {
          failed.add(m.storage_key);
          report.failed++;
          d.log.error({ err: e, key: m.storage_key, backend: name }, "could not move a stored object; it stays where it is");
        }
      });
    }
  }
  const left = await d.db.kysely
    .selectNoFrom((eb) => [
      eb.selectFrom("nar").select(eb.fn.countAll<number>().as("n")).where("backend", "=", name).as("nars"),
      eb.selectFrom("build_log").select(eb.fn.countAll<number>().as("n")).where("backend", "=", name).as("logs"),
    ])
    .executeTakeFirstOrThrow();
  report.remaining = Number(left.nars) + Number(left.logs);
  // Writes that chose the backend before it was marked draining and are still being stored.
  const uploads = await d.db.kysely.selectFrom("storage_journal").select((eb) => eb.fn.countAll<number>().as("n")).where("backend", "=", name).where("kind", "=", "upload").executeTakeFirstOrThrow();
  report.inFlight = Number(uploads.n);
  return report;
}

/** Bytes each backend of the server's placement should hold under its strategy. */
export function targetBytes(pool: StoragePool, usage: Map<string, number>): Map<string, number> {
  const placement = pool.placementFor(undefined);
  const backends = placement.backends.map((n) => pool.get(n));
  const total = backends.reduce((n, b) => n + (usage.get(b.name) ?? 0), 0);
  const targets = new Map<string, number>();
  if (placement.strategy === "in-order") {
    let left = total;
    for (const b of backends) {
      const take = Math.min(left, b.config.capacity ?? Number.POSITIVE_INFINITY);
      targets.set(b.name, take);
      left -= take;
    }
    return targets;
  }
  const weights = backends.map((b) => (placement.strategy === "split" ? b.config.weight : 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  backends.forEach((b, i) => targets.set(b.name, Math.min((total * (weights[i] as number)) / sum, b.config.capacity ?? Number.POSITIVE_INFINITY)));
  return targets;
}

/**
 * Moves NARs from backends above their share (targetBytes) to those below it, until each is
 * within `tolerance` bytes (default: 1% of everything stored) of its share.
 */
export async function rebalance(d: MoveDeps, o: { dryRun?: boolean; toleranceBytes?: number } = {}): Promise<MoveReport> {
  const usage = new Map([...(await backendUsage(d.db))].map(([n, u]) => [n, u.bytes]));
  const targets = targetBytes(d.pool, usage);
  const total = [...targets.keys()].reduce((n, b) => n + (usage.get(b) ?? 0), 0);
  const tolerance = o.toleranceBytes ?? Math.ceil(total / 100);
  const surplus = new Map([...targets].map(([n, t]) => [n, (usage.get(n) ?? 0) - t]));
  const report: MoveReport = { moved: 0, bytes: 0, failed: 0, remaining: 0, inFlight: 0, plan: new Map() };
  for (const [donor, extra] of [...surplus].sort((a, b) => b[1] - a[1])) {
    if (extra <= tolerance) continue;
    let after = 0;
    let left = extra;
    while (left > tolerance) {
      const batch = await objectsOn(d.db, donor, "nar", after, 100);
      if (batch.length === 0) break;
      after = (batch.at(-1) as Movable).id;
      const chosen: Array<{ m: Movable; to: Backend }> = [];
      for (const m of batch) {
        if (left <= tolerance) break;
        const size = m.size ?? 0;
        if (size > left + tolerance) continue;
        // The backend furthest below its share that has room for this NAR.
        const receiver = [...surplus]
          .filter(([n, s]) => n !== donor && -s >= size - tolerance)
          .sort((a, b) => a[1] - b[1])[0];
        if (!receiver) continue;
        const to = d.pool.get(receiver[0]);
        surplus.set(receiver[0], receiver[1] + size);
        surplus.set(donor, (surplus.get(donor) ?? 0) - size);
        left -= size;
        chosen.push({ m, to });
        const p = report.plan.get(`${donor} -> ${to.name}`) ?? { objects: 0, bytes: 0 };
        p.objects++;
        p.bytes += size;
        report.plan.set(`${donor} -> ${to.name}`, p);
      }
      if (o.dryRun) continue;
      await runLimited(chosen, d.concurrency ?? 4, async ({ m, to }) => {
        try {
          if ((await moveObject(d, m, to, d.pool.setup.retireAfterSeconds).catch((e: unknown) => {
            if (e instanceof CopyMismatchError && e.source) {
              report.failed++;
              d.log.error({ err: e, key: m.storage_key }, "stored object does not match its recorded hash; left where it is");
              return "damaged" as const;
            }
            throw e;
          })) === "moved") {
            report.moved++;
            report.bytes += m.size ?? 0;
          }
        } catch (e) {
          report.failed++;
          d.log.error({ err: e, key: m.storage_key, from: donor, to: to.name }, "could not move a stored object; it stays where it is");
        }
      });
    }
  }
  return report;
}
