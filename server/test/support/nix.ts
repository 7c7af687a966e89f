/**
 * The real Nix 2.8 client, isolated and offline (see shared/nix/roundtrip.sh): its own config
 * dir, chroot stores, a fresh narinfo disk cache per call, nothing under /nix.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { makeTempDir, type TempDir } from "./tmp.ts";
import { ISOLATED_NIX_CONF } from "./nix-conf.ts";

const run = promisify(execFile);

export interface PathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  signatures?: string[];
}

export interface NixEnv {
  dir: TempDir;
  /** The environment Nix runs in here (its config dir, HOME, state dirs), for other programs that call nix. */
  env: Record<string, string>;
  /** The source chroot store where test paths are built. */
  src: string;
  nix(args: string[], opts?: { cacheDir?: string; input?: string }): Promise<string>;
  /** Builds top → mid → dep (+ top → dep) with a nonce, so every call makes new paths; returns top. */
  buildClosure(nonce: string): Promise<string>;
  /** Builds an arbitrary Nix expression file's default output. */
  build(expr: string, args?: string[]): Promise<string>;
  pathInfo(store: string, path: string): Promise<PathInfo[]>;
  /** Writes the netrc Nix reads (HTTP Basic, password = token) for the host of `url`. */
  setToken(url: string, token: string | undefined): Promise<void>;
  freshStore(name: string): string;
  generateKey(name: string): Promise<{ secretFile: string; publicKey: string }>;
  cleanup(): Promise<void>;
}

const NIX_CONF = ISOLATED_NIX_CONF;

/** top → mid → dep (+ top → dep), new paths for every nonce: `nix-build closure.nix --argstr nonce N`. */
export const CLOSURE_NIX = `{ nonce }:
let
  mk = name: script: builtins.derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ];
  };
  dep = mk "lt-dep-\${nonce}" "echo dependency \${nonce} > $out";
  mid = mk "lt-mid-\${nonce}" "/bin/mkdir -p $out/bin; printf '#!/bin/sh\\\\ncat \${dep}\\\\n' > $out/bin/hi; /bin/chmod +x $out/bin/hi";
in mk "lt-top-\${nonce}" "/bin/mkdir -p $out; echo \${mid} > $out/mid; /bin/ln -s \${dep} $out/dep"
`;

let counter = 0;

export async function createNixEnv(): Promise<NixEnv> {
  const dir = await makeTempDir("nix-env");
  const conf = join(dir.path, "conf");
  await mkdir(conf, { recursive: true });
  await mkdir(join(dir.path, "home"), { recursive: true });
  await writeFile(join(conf, "nix.conf"), NIX_CONF);
  const src = join(dir.path, "src-store");
  const baseEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NIX_CONF_DIR: conf,
    HOME: join(dir.path, "home"),
    NIX_STATE_DIR: join(dir.path, "state"),
    NIX_LOG_DIR: join(dir.path, "log"),
  };
  const nixCmd = async (args: string[], opts: { cacheDir?: string; input?: string } = {}): Promise<string> => {
    const [cmd, ...rest] = args;
    const child = run(cmd as string, rest, {
      env: { ...baseEnv, XDG_CACHE_HOME: opts.cacheDir ?? join(dir.path, `cache-${++counter}`) },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    });
    if (opts.input !== undefined) {
      child.child.stdin?.end(opts.input);
    }
    try {
      const { stdout } = await child;
      return stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${args.join(" ")} failed: ${err.stderr?.trim() || err.message}`);
    }
  };
  const env: NixEnv = {
    dir,
    env: { ...baseEnv, XDG_CACHE_HOME: join(dir.path, "cache-client") },
    src,
    nix: nixCmd,
    async buildClosure(nonce) {
      const file = join(dir.path, "closure.nix");
      await writeFile(file, CLOSURE_NIX);
      return (await nixCmd(["nix-build", "--store", src, file, "--argstr", "nonce", nonce, "--no-out-link"])).trim();
    },
    async build(expr, args = []) {
      const file = join(dir.path, `expr-${++counter}.nix`);
      await writeFile(file, expr);
      const out = await nixCmd(["nix-build", "--store", src, file, ...args, "--no-out-link"]);
      return out.trim().split("\n").filter(Boolean).join("\n");
    },
    async pathInfo(store, path) {
      return JSON.parse(await nixCmd(["nix", "--store", store, "path-info", "-r", "--json", path])) as PathInfo[];
    },
    async setToken(url, token) {
      const host = new URL(url).hostname;
      const file = join(conf, "netrc");
      await writeFile(file, token === undefined ? "" : `machine ${host}\nlogin larder\npassword ${token}\n`);
      await chmod(file, 0o600);
    },
    freshStore(name) {
      return join(dir.path, `${name}-${++counter}`);
    },
    async generateKey(name) {
      const secret = await nixCmd(["nix", "key", "generate-secret", "--key-name", name]);
      const secretFile = join(dir.path, `${name}.sec`);
      await writeFile(secretFile, secret);
      const publicKey = (await nixCmd(["nix", "key", "convert-secret-to-public"], { input: secret })).trim();
      return { secretFile, publicKey };
    },
    cleanup: () => dir.cleanup(),
  };
  return env;
}

/** NarHash/NarSize/references of a closure, in a comparable form. */
export function closureSummary(infos: PathInfo[]): string[] {
  return infos.map((p) => `${p.path} ${p.narHash} ${p.narSize} ${[...p.references].sort().join(",")}`).sort();
}
