/**
 * The configured storage backends as one pool: each stored object's row names its backend, and
 * `write` picks one for a new object by the placement's strategy, skipping backends that are
 * full (capacity counted from the database), failing (a recent error) or being drained, and
 * trying the next when a write fails. A single backend behaves exactly as before.
 */
import type { Logger } from "pino";
import type { Db } from "../db/connect.ts";
import { backendUsage, drainingBackends, recordedBackends } from "../db/storage-backends.ts";
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
  write<T>(cacheName: string | undefined, size: number, put: (b: Backend) => Promise<T>, canRetry?: () => Promise<boolean>, hold?: boolean): Promise<Written<T>>;
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
  const byName = new Map(backends.map((b) => [b.name, b]));  const refreshMs = o.refreshMs ?? 15_000;
  const cooldownMs = o.failureCooldownMs ?? 30_000;
  // Usage matters only when something reads it: a capacity, or a strategy that weighs bytes.
  const needsUsage =
    backends.some((b) => b.config.capacity !== undefined) ||
    [setup.placement, ...setup.caches.values()].some((p) => p.strategy === "split" || p.strategy === "least-used");
  let draining = new Set<string>();
  const writing = new Map<string, number>();
  // Objects this process stored lately (settled: their rows are committed). Each is counted on top
  // of the usage reads until one that started after it settled, so never zero times. A read that
  // starts between an object's commit and its settling sees the row and still counts it here: twice,
  // until the next read (known imprecision; exact would need the read to say which recent rows it saw).
  const recent: Array<{ name: string; size: number; at: number }> = [];
  const recentBytes = new Map<string, number>();
  let countedBefore = 0;
  let fromDb = new Map<string, number>();
  const used = (name: string): number => {
    while (recent.length > 0 && (recent[0] as { at: number }).at < countedBefore) {
      const r = recent.shift() as { name: string; size: number };
      recentBytes.set(r.name, (recentBytes.get(r.name) ?? 0) - r.size);
    }
    return (fromDb.get(name) ?? 0) + (recentBytes.get(name) ?? 0) + (writing.get(name) ?? 0);
  };
  const failingUntil = new Map<string, number>();
  const turns = new Map<Placement, number>();
  const lastWarned = new Map<string, number>();

  const refresh = async (): Promise<void> => {
    if (!o.db) return;
    if (needsUsage) {
      const started = Date.now();
      const usage = await backendUsage(o.db);
      countedBefore = started;
      fromDb = new Map([...usage].map(([n, u]) => [n, u.bytes]));
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
    async write(cacheName, size, put, canRetry, hold) {
      const placement = placementFor(cacheName);
      const order = candidates(placement, size);
      if (order.length === 0) {
        throw new ServerError("InsufficientStorage", `no storage backend can take ${size} more bytes (all full, failing or draining)`, { backend: "storage" });
      }
      let lastError: unknown;
      for (const [i, b] of order.entries()) {
        if (i > 0 && canRetry && !(await canRetry())) break;
        writing.set(b.name, (writing.get(b.name) ?? 0) + size);
        let settled = false;
        const settle = (stored: boolean) => {
          if (settled) return;
          settled = true;
          writing.set(b.name, (writing.get(b.name) ?? 0) - size);
          if (!stored) return;
          recent.push({ name: b.name, size, at: Date.now() });
          recentBytes.set(b.name, (recentBytes.get(b.name) ?? 0) + size);
        };
        try {
          const value = await put(b);
          o.metrics?.storageWrites.inc({ backend: b.name });
          o.log.debug({ backend: b.name, strategy: placement.strategy, size, fallback: i }, "stored object on backend");
          if (!hold) settle(true);
          return { backend: b, value, settle: (stored = true) => settle(stored) };
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
