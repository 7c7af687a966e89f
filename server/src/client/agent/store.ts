/**
 * The host's Nix store as the agent uses it: fetch a closure from the cache, point a profile at
 * a path, read where a profile points. `root` is a chroot store's directory (Nix's
 * `--store DIR`), so a path's files are at root + path; empty on a normal host.
 */
import { chmod, mkdir, readlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { runCommand, type RunResult } from "./run.ts";

export interface StoreOptions {
  /** A chroot store directory for every Nix command, or undefined for the host's store. */
  root: string | undefined;
  /** The logical store directory paths are named in. */
  storeDir: string;
  /** Where the agent keeps its netrc (the cache token, for private caches). */
  stateDir: string;
  env: Record<string, string>;
}

export interface Substituter {
  url: string;
  publicKey: string;
}

export class HostStore {
  readonly o: StoreOptions;
  constructor(o: StoreOptions) {
    this.o = o;
  }

  /** Where the files of a store path are on this machine. */
  real(storePath: string): string {
    return this.o.root === undefined ? storePath : join(this.o.root, storePath);
  }

  isStorePath(p: string): boolean {
    return p.startsWith(`${this.o.storeDir}/`) && /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/.test(p.slice(this.o.storeDir.length + 1));
  }

  private storeArgs(): string[] {
    return this.o.root === undefined ? [] : ["--store", this.o.root];
  }

  /**
   * Substitutes the closure of `path` from the cache alone, trusting only its key
   * (`nix-store --realise` does this the same way from Nix 2.8 to today). The netrc carries the
   * agent's token for a private cache. A negative narinfo TTL of 0: the server checked that the
   * closure is complete before any agent was told, so an earlier miss must not stick.
   */
  async realise(path: string, sub: Substituter, token: string | undefined): Promise<RunResult> {
    const netrc = join(this.o.stateDir, "netrc");
    const host = new URL(sub.url).hostname;
    await mkdir(this.o.stateDir, { recursive: true, mode: 0o700 });
    await writeFile(netrc, token ? `machine ${host}\nlogin larder\npassword ${token}\n` : "", { mode: 0o600 });
    await chmod(netrc, 0o600);
    return runCommand(
      [
        "nix-store",
        ...this.storeArgs(),
        "--realise",
        path,
        "--option", "substituters", sub.url,
        "--option", "trusted-public-keys", sub.publicKey,
        "--option", "require-sigs", "true",
        "--option", "netrc-file", netrc,
        "--option", "narinfo-cache-negative-ttl", "0",
      ],
      { env: this.o.env },
    );
  }

  /** Makes `profile` point at `path` (a new generation, which is also a GC root). */
  async setProfile(profile: string, path: string): Promise<RunResult> {
    await mkdir(dirname(profile), { recursive: true });
    return runCommand(["nix-env", ...this.storeArgs(), "-p", profile, "--set", path], { env: this.o.env });
  }

  /** The store path a profile points at (following its generation link), or null. */
  async readProfile(profile: string): Promise<string | null> {
    let p = profile;
    for (let i = 0; i < 16; i++) {
      let next: string;
      try {
        next = await readlink(p);
      } catch {
        return null;
      }
      const abs = resolve(dirname(p), next);
      if (abs.startsWith(`${this.o.storeDir}/`)) {
        const top = abs.slice(0, this.o.storeDir.length + 1 + abs.slice(this.o.storeDir.length + 1).split("/")[0]!.length);
        return this.isStorePath(top) ? top : null;
      }
      p = abs;
    }
    return null;
  }
}
