/**
 * `larder watch-store CACHE`: pushes store paths as they become valid, until interrupted. Nix
 * deletes `<path>.lock` in the store directory once a path is registered; that removal queues
 * the path. Paths are pushed in batches (after 2 s without news or 10 s at most), and memory stays
 * bounded: the queue is flushed early at 10,000 paths and only the last 100,000 pushed hashes are
 * remembered (forgetting one costs a get-missing-paths entry, never a re-upload).
 */
import { watch } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { CliError } from "./errors.ts";
import { pathInfos, type LocalPathInfo } from "./nix.ts";
import { planPush, runUploads, summaryLine, type PushOptions, type PushTarget } from "./push.ts";
import type { Progress } from "./progress.ts";

const IDLE_MS = 2000;
const MAX_WAIT_MS = 10_000;
const MAX_PENDING = 10_000;
const MAX_KNOWN = 100_000;

/** Where the store's files really are: the chroot root + store dir for `--store /root` or `?root=`. */
export function realStoreDir(store: string | undefined, storeDir: string): string {
  if (store === undefined || store === "auto" || store === "daemon") return storeDir;
  if (store.startsWith("/")) return join(store, storeDir);
  const q = store.indexOf("?");
  const root = q >= 0 ? new URLSearchParams(store.slice(q + 1)).get("root") : null;
  if (root) return join(root, storeDir);
  throw new CliError(`watch-store cannot watch the store "${store}"; give a local store or a chroot path with --store`);
}

export interface WatchHandle {
  stopped: Promise<void>;
  stop(): void;
}

export function watchStore(target: PushTarget, opts: PushOptions, progress: () => Progress, log: (line: string) => void): WatchHandle {
  const storeDir = target.cfg.store_dir ?? "/nix/store";
  const dir = realStoreDir(opts.store, storeDir);
  const pending = new Set<string>();
  const known = new Set<string>();
  let idle: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let flushing = Promise.resolve();
  let stopping = false;

  const remember = (infos: LocalPathInfo[]) => {
    for (const i of infos) {
      known.delete(i.path);
      known.add(i.path);
    }
    while (known.size > MAX_KNOWN) known.delete(known.values().next().value as string);
  };

  const pushBatch = async (roots: string[]) => {
    let infos: LocalPathInfo[];
    try {
      infos = await pathInfos(roots, { ...(opts.store !== undefined && { store: opts.store }), closure: opts.closure });
    } catch {
      // One root may have vanished (GC) since it appeared; push the others.
      infos = [];
      for (const r of roots) infos.push(...(await pathInfos([r], { ...(opts.store !== undefined && { store: opts.store }), closure: opts.closure }).catch(() => [])));
    }
    const fresh = infos.filter((i) => !known.has(i.path));
    if (fresh.length === 0) return;
    const plan = await planPush(target.api, target.cache, target.cfg, fresh, opts);
    const summary = await runUploads(target.api, target.cache, plan, opts, progress());
    remember(fresh);
    log(summaryLine(target.cache, plan, summary));
  };

  const flush = () => {
    clearTimeout(idle);
    clearTimeout(deadline);
    idle = deadline = undefined;
    if (pending.size === 0) return flushing;
    const roots = [...pending];
    pending.clear();
    flushing = flushing.then(() => pushBatch(roots)).catch((e) => log(`push failed: ${e instanceof Error ? e.message : String(e)}`));
    return flushing;
  };

  const queue = (path: string) => {
    if (stopping || known.has(path)) return;
    pending.add(path);
    if (pending.size >= MAX_PENDING) {
      void flush();
      return;
    }
    clearTimeout(idle);
    idle = setTimeout(() => void flush(), IDLE_MS);
    deadline ??= setTimeout(() => void flush(), MAX_WAIT_MS);
  };

  const watcher = watch(dir, { persistent: true }, (_event, file) => {
    if (typeof file !== "string" || !file.endsWith(".lock")) return;
    const base = file.slice(0, -".lock".length);
    if (base.endsWith(".drv") || !/^[0-9a-df-np-sv-z]{32}-/.test(base)) return;
    stat(join(dir, file)).then(
      () => {},
      () => stat(join(dir, base)).then(() => queue(`${storeDir}/${base}`), () => {}),
    );
  });
  let resolveStopped: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  watcher.on("error", (e) => {
    log(`cannot watch ${dir}: ${e.message}`);
    stopping = true;
    resolveStopped();
  });
  log(`watching ${dir} for new paths to push to "${target.cache}" (Ctrl-C to stop)`);
  return {
    stopped,
    stop() {
      if (stopping) return;
      stopping = true;
      watcher.close();
      void flush().then(() => resolveStopped());
    },
  };
}
