/**
 * What the client asks the local Nix: path info (closures, signatures) and NAR dumps. Both go
 * through the `nix` command, which works the same for the default store, a daemon and a
 * `--store` chroot store (`nix-store --dump` reads the filesystem path and cannot see a chroot).
 */
import { spawn } from "node:child_process";
import { lstat, readlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { narOf, physicalPath } from "./nar-dump.ts";
import { CliError } from "./errors.ts";
import { parseHash } from "../nix/hash.ts";

const NIX_FLAGS = ["--extra-experimental-features", "nix-command"];

export interface LocalPathInfo {
  path: string;
  /** "sha256:<hex>". */
  narHash: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
  deriver?: string;
  ca?: string;
  signatures: string[];
}

function storeArgs(store: string | undefined): string[] {
  return store === undefined ? [] : ["--store", store];
}

/** The last `error: …` line Nix printed, as one line. */
function nixError(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const err = [...lines].reverse().find((l) => l.startsWith("error:"));
  return (err ?? lines.at(-1) ?? "failed").replace(/^error:\s*/, "").replace(/\x1b\[[0-9;]*m/g, "");
}

export function runNix(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("nix", [...NIX_FLAGS, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e) => {
      reject(new CliError((e as NodeJS.ErrnoException).code === "ENOENT" ? "the nix command is not on PATH; install Nix or fix PATH" : `cannot run nix: ${e.message}`));
    });
    child.on("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
      else reject(new CliError(`nix ${args.find((a) => !a.startsWith("-") && !a.startsWith("/")) ?? ""}: ${nixError(Buffer.concat(err).toString("utf8"))}`));
    });
    child.stdin.end(input ?? "");
  });
}

function toHexHash(h: string): string {
  try {
    return `sha256:${parseHash(h).digest.toString("hex")}`;
  } catch (e) {
    throw new CliError(`nix reported a NAR hash larder cannot read (${h}): ${(e as Error).message}`);
  }
}

/**
 * The store path an argument names: a path in the store (a file inside one names that one), or
 * one reached through links such as ./result (or ./result/bin/hi), followed a component at a time
 * until the path is in the store. What the store holds is never looked at on this machine, where
 * it may not exist: with `--store /chroot` it lives under /chroot. Anything else is returned
 * absolute, for the caller to report.
 */
export async function resolveArg(arg: string, storeDir = "/nix/store"): Promise<string> {
  const storePathOf = (p: string): string | undefined => {
    if (!p.startsWith(`${storeDir}/`) || p.length === storeDir.length + 1) return undefined;
    const rest = p.slice(storeDir.length + 1);
    return `${storeDir}/${rest.split("/")[0]}`;
  };
  let cur = "/";
  let hops = 0;
  for (const part of resolve(arg).split("/").filter(Boolean)) {
    cur = join(cur, part);
    for (;;) {
      const found = storePathOf(cur);
      if (found !== undefined) return found;
      if (++hops > 64) return cur;
      let target: string;
      try {
        target = await readlink(cur);
      } catch {
        break;
      }
      cur = resolve(dirname(cur), target);
    }
  }
  return cur;
}

/** Path info for `paths` and, with `closure`, everything they reference (the runtime closure). */
export async function pathInfos(paths: string[], opts: { store?: string; closure: boolean }): Promise<LocalPathInfo[]> {
  if (paths.length === 0) return [];
  const out = await runNix([...storeArgs(opts.store), "path-info", "--json", ...(opts.closure ? ["--recursive"] : []), ...paths]);
  const raw = JSON.parse(out) as unknown;
  // Nix ≤ 2.18 prints an array of objects with "path"; later versions an object keyed by path.
  const entries: Record<string, unknown>[] = Array.isArray(raw)
    ? (raw as Record<string, unknown>[])
    : Object.entries(raw as Record<string, Record<string, unknown> | null>).map(([path, v]) => ({ ...(v ?? { valid: false }), path }));
  return entries.map((e) => {
    if (e.valid === false || typeof e.narHash !== "string") throw new CliError(`path ${String(e.path)} is not valid in the Nix store`);
    return {
      path: e.path as string,
      narHash: toHexHash(e.narHash),
      narSize: e.narSize as number,
      references: (e.references as string[] | undefined) ?? [],
      ...(typeof e.deriver === "string" && { deriver: e.deriver }),
      ...(typeof e.ca === "string" && { ca: e.ca }),
      signatures: (e.signatures as string[] | undefined) ?? [],
    };
  });
}

/**
 * The build log of a derivation as the local store keeps it, or undefined when it has none.
 * Substituters are switched off: the log wanted is the one built here, not a download.
 */
export async function localBuildLog(drv: string, store: string | undefined): Promise<string | undefined> {
  try {
    return await runNix([...storeArgs(store), "log", "--option", "substituters", "", drv]);
  } catch (e) {
    if (e instanceof CliError && /not available|no build log/i.test(e.message)) return undefined;
    throw e;
  }
}

export interface NarDump {
  stdout: Readable;
  /** Resolves when the dump ends; rejects with Nix's error if it failed. */
  done: Promise<void>;
  kill(): void;
}

/**
 * Streams the NAR of `path` (what `nix-store --dump` writes), never touching disk: read here
 * when the store's files are on this machine, else from `nix store dump-path`.
 */
export async function dumpNar(path: string, store: string | undefined): Promise<NarDump> {
  const physical = physicalPath(path, store);
  if (physical !== undefined && (await lstat(physical).then(() => true, () => false))) {
    const stdout = narOf(physical);
    const done = finished(stdout).catch((e: Error) => {
      throw new CliError(`reading ${path} from the store: ${e.message}`);
    });
    done.catch(() => {});
    return { stdout, done, kill: () => stdout.destroy() };
  }
  return dumpNarWithNix(path, store);
}

function dumpNarWithNix(path: string, store: string | undefined): NarDump {
  const child = spawn("nix", [...NIX_FLAGS, ...storeArgs(store), "store", "dump-path", path], { stdio: ["ignore", "pipe", "pipe"] });
  const err: Buffer[] = [];
  child.stderr.on("data", (d: Buffer) => err.length < 64 && err.push(d));
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (e) => reject(new CliError(`cannot run nix: ${e.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new CliError(`nix store dump-path ${path}: ${signal ? `killed by ${signal}` : nixError(Buffer.concat(err).toString("utf8"))}`));
    });
  });
  done.catch(() => {});
  return { stdout: child.stdout, done, kill: () => child.kill() };
}
