/**
 * The configured storage backends as one pool: each stored object's row names its backend, and
 * `write` picks one for a new object by the placement's strategy, skipping backends that are
 * full (capacity counted from the database), failing (a recent error) or being drained, and
 * trying the next when a write fails. A single backend behaves exactly as before.
 */
import type { Logger } from "pino";
import type { Db } from "../db/connect.ts";
import { backendUsageSeeing, drainingBackends, recordedBackends } from "../db/storage-backends.ts";
import { ServerError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { createStorage } from "./index.ts";
import { rankBackends, type BackendState } from "./strategy.ts";
import { DEFAULT_BACKEND, StorageError, type BackendConfig, type Placement, type Storage, type StorageConfig, type StorageSetup } from "./types.ts";

export interface Backend {
  readonly name: string;
  readonly storage: Storage;
  readonly config: BackendConfig;
}

export interface StoragePool {
  readonly backends: readonly Backend[];
  readonly setup: StorageSetup;
  /** Where temporary objects that are not NARs go (multipart upload parts): the first backend. */
  readonly scratch: Storage;
  /** The backend a row names. Unknown names cannot occur once the pool is open (checked at start). */
  get(name: string): Backend;
  placementFor(cacheName: string | undefined): Placement;
  /**
   * Runs `put` on the backend chosen for a new object of `size` bytes; when it throws, the backend
   * is marked failing and the next candidate is tried, as long as `canRetry` says the content is
   * still there. No candidate: 507 (InsufficientStorage).
   */
  write<T>(
    cacheName: string | undefined,
    size: number,
    put: (b: Backend) => Promise<T>,
    canRetry?: () => Promise<boolean>,
    hold?: boolean,
    /** The storage key of the `nar` row that will record what `put` wrote (exact usage counting). */
    keyOf?: (value: T) => string,
  ): Promise<Written<T>>;
  /** Bytes counted on each backend now: the last usage read plus this process's writes it did not include. */
  usage(): Map<string, number>;
  /** Rereads bytes stored per backend and which are draining. */
  refresh(): Promise<void>;
  /** Probes every backend: name → "ok" or "unavailable". */
  check(): Promise<Map<string, "ok" | "unavailable">>;
  close(): void;
}

export interface Written<T> {
  backend: Backend;
  value: T;
  /**
   * With `hold`, the written bytes count as "being written" until this is called (after the row
   * that records them is committed, or the bytes are deleted); without it, at once.
   */
  settle(stored?: boolean): void;
}

/** A write of this process, counted on its backend until a usage read accounts for it. */
interface Mine {
  name: string;
  size: number;
  key?: string;
  settledAt?: number;
}

export interface PoolOptions {
  db: Db;
  log: Logger;
  metrics?: Metrics;
  /** How often usage and draining flags are reread (ms); other servers' writes count within this time. */
  refreshMs?: number;
  /** How long a backend whose write failed is skipped (ms). */
  failureCooldownMs?: number;
  open?: (c: StorageConfig) => Promise<Storage>;
}

export class UnknownBackendError extends Error {
  override name = "UnknownBackendError";
}

/**
 * Opens every backend and checks that the database names no backend the config lacks: a renamed
 * or removed backend would otherwise make its NARs unreadable without a word.
 */
export async function openStoragePool(setup: StorageSetup, o: PoolOptions): Promise<StoragePool> {
  const open = o.open ?? createStorage;
  const backends: Backend[] = [];
  for (const config of setup.backends) backends.push({ name: config.name, storage: await open(config.storage), config });
  const names = new Set(backends.map((b) => b.name));
  const missing = [...(await recordedBackends(o.db))].filter((n) => !names.has(n));
  if (missing.length > 0) {
    const have = backends.map((b) => `"${b.name}"`).join(", ");
    throw new UnknownBackendError(
      `the database has objects on storage backend${missing.length > 1 ? "s" : ""} ${missing.map((n) => `"${n}"`).join(", ")}, which the config does not name (configured: ${have}). ` +
        `Name the backend that holds them so in server.toml, or if it was renamed run \`larderd storage rename-backend ${missing[0]} NEW\`.`,
    );
  }
  const pool = buildPool(setup, backends, o);
  await pool.refresh();
  return pool;
}

/** One backend already open, placed on by nothing else (tests, benchmarks, tools over one store). */
export function poolOf(storage: Storage, log: Logger, name: string = DEFAULT_BACKEND): StoragePool {
  const config: BackendConfig = { name, storage: { type: "local", path: "" }, weight: 1, presignDownloads: false };
  const setup: StorageSetup = { backends: [config], placement: { strategy: "in-order", backends: [name] }, caches: new Map(), retireAfterSeconds: 3600 };
  return buildPool(setup, [{ name, storage, config }], { log });
}

function buildPool(setup: StorageSetup, backends: Backend[], o: Omit<PoolOptions, "db"> & { db?: Db }): StoragePool {
  const byName = new Map(backends.map((b) => [b.name, b]));
  const refreshMs = o.refreshMs ?? 15_000;
  const cooldownMs = o.failureCooldownMs ?? 30_000;
  // Usage matters only when something reads it: a capacity, or a strategy that weighs bytes.
  const needsUsage =
    backends.some((b) => b.config.capacity !== undefined) ||
    [setup.placement, ...setup.caches.values()].some((p) => p.strategy === "split" || p.strategy === "least-used");
  let draining = new Set<string>();
  // This process's writes the last usage read did not count: from the start of the write until a
  // read shows its row (or shows it gone). A write whose row the read may have seen is matched by
  // its storage key, asked in the same snapshot as the sums, so nothing is counted twice or not at
  // all (a key becomes known before its row is committed: `hold` writes, ingest's case).
  const mine = new Set<Mine>();
  let fromDb = new Map<string, number>();
  let appliedStart = 0;
  const used = (name: string): number => {
    let bytes = fromDb.get(name) ?? 0;
    for (const m of mine) if (m.name === name) bytes += m.size;
    return bytes;
  };
  const failingUntil = new Map<string, number>();
  const turns = new Map<Placement, number>();
  const lastWarned = new Map<string, number>();

  const refresh = async (): Promise<void> => {
    if (!o.db) return;
    if (needsUsage) {
      const started = Date.now();
      const usage = await backendUsageSeeing(o.db, () => [...mine].flatMap((m) => (m.key === undefined ? [] : [m.key])));
      // Two reads may overlap (the timer and an explicit refresh): an older one never replaces a newer.
      if (started < appliedStart) return;
      appliedStart = started;
      for (const m of mine) {
        const seen = usage.seen.get(m.key ?? "");
        // Counted by the read (on whichever backend its row names now), or settled before the read
        // began and gone since (deleted, or never a NAR row: build logs).
        if (seen !== undefined || (m.settledAt !== undefined && m.settledAt < started)) mine.delete(m);
      }
      fromDb = new Map([...usage.backends].map(([n, u]) => [n, u.bytes]));
      for (const b of backends) o.metrics?.storageBytes.set({ backend: b.name }, fromDb.get(b.name) ?? 0);
    }
    if (backends.length > 1) draining = await drainingBackends(o.db);
  };
  let timer: NodeJS.Timeout | undefined;
  if (o.db && (needsUsage || backends.length > 1)) {
    timer = setInterval(() => void refresh().catch((e: unknown) => o.log.warn({ err: e }, "could not read storage backend usage")), refreshMs);
    timer.unref();
  }

  const skip = (name: string, reason: "full" | "failing" | "draining" | "write-failed") => {
    o.metrics?.storageSkips.inc({ backend: name, reason });
    // One line per backend and reason a minute: a full backend is skipped on every write.
    const key = `${name}\0${reason}`;
    const now = Date.now();
    if ((lastWarned.get(key) ?? 0) + 60_000 <= now) {
      lastWarned.set(key, now);
      o.log.warn({ backend: name, reason }, `storage backend "${name}" skipped for new objects (${reason})`);
    }
  };

  const get = (name: string): Backend => {
    const b = byName.get(name);
    if (!b) throw new UnknownBackendError(`no storage backend is named "${name}"`);
    return b;
  };

  const placementFor = (cacheName: string | undefined): Placement =>
    (cacheName !== undefined ? setup.caches.get(cacheName) : undefined) ?? setup.placement;

  const candidates = (placement: Placement, size: number): Backend[] => {
    const now = Date.now();
    const states: BackendState[] = [];
    for (const name of placement.backends) {
      const b = get(name);
      if (draining.has(name)) {
        skip(name, "draining");
        continue;
      }
      if ((failingUntil.get(name) ?? 0) > now) {
        skip(name, "failing");
        continue;
      }
      const bytes = used(name);
      if (b.config.capacity !== undefined && bytes + size > b.config.capacity) skip(name, "full");
      states.push({ name, used: bytes, weight: b.config.weight, ...(b.config.capacity !== undefined && { capacity: b.config.capacity }) });
    }
    const turn = turns.get(placement) ?? 0;
    turns.set(placement, turn + 1);
    return rankBackends(placement.strategy, states, size, turn).map((s) => get(s.name));
  };

  return {
    backends,
    setup,
    scratch: (backends[0] as Backend).storage,
    get,
    placementFor,
    async write(cacheName, size, put, canRetry, hold, keyOf) {
      const placement = placementFor(cacheName);
      const order = candidates(placement, size);
      if (order.length === 0) {
        throw new ServerError("InsufficientStorage", `no storage backend can take ${size} more bytes (all full, failing or draining)`, { backend: "storage" });
      }
      let lastError: unknown;
      for (const [i, b] of order.entries()) {
        if (i > 0 && canRetry && !(await canRetry())) break;
        const m: Mine = { name: b.name, size };
        // Without usage reads nothing would ever retire the record.
        if (needsUsage) mine.add(m);
        let settled = false;
        const settle = (stored: boolean, key?: string) => {
          if (settled) return;
          settled = true;
          if (!stored) {
            mine.delete(m);
            return;
          }
          m.settledAt = Date.now();
          if (key !== undefined) m.key = key;
        };
        try {
          const value = await put(b);
          o.metrics?.storageWrites.inc({ backend: b.name });
          o.log.debug({ backend: b.name, strategy: placement.strategy, size, fallback: i }, "stored object on backend");
          // The key before the commit (hold): a usage read that may see the row also asks for it.
          const key = keyOf?.(value);
          if (key !== undefined) m.key = key;
          if (!hold) settle(true);
          return { backend: b, value, settle: (stored = true) => settle(stored, key) };
        } catch (e) {
          settle(false);
          lastError = e;
          // Only the backend's own failures count against it: a database error or a bad upload
          // (the content, not the place) is the caller's to report, and another backend would fail alike.
          if (!(e instanceof StorageError)) throw e;
          failingUntil.set(b.name, Date.now() + cooldownMs);
          o.metrics?.storageSkips.inc({ backend: b.name, reason: "write-failed" });
          o.log.warn({ backend: b.name, err: e, others: order.length - i - 1 }, `storage backend "${b.name}" failed a write; skipping it for ${cooldownMs / 1000}s`);
        }
      }
      throw lastError;
    },
    refresh,
    usage: () => new Map(backends.map((b) => [b.name, used(b.name)])),
    async check() {
      const results = await Promise.all(
        backends.map(async (b) => {
          try {
            await b.storage.check();
            return [b.name, "ok"] as const;
          } catch {
            return [b.name, "unavailable"] as const;
          }
        }),
      );
      return new Map(results);
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
