/**
 * The bench's data, built by the real Nix 2.8 client in isolation (the same setup as
 * test/support/nix.ts: own config dir, a chroot store, nothing under /nix, no nixpkgs):
 * a closure of mixed-size paths, one medium and one big NAR of semi-compressible bytes.
 */
import { chmod, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, type RunResult } from "./proc.ts";
import { ISOLATED_NIX_CONF } from "../test/support/nix-conf.ts";

const NIX_CONF = `${ISOLATED_NIX_CONF}max-jobs = 2
`;

// Random bytes mapped onto 16 letters: 4 bits of entropy per byte, so zstd halves them, about
// what it does to real store paths, and `tr` makes them at disk speed.
const ALPHABET = "a-p".repeat(16);

// Paths 1..n-1 form a tree (each refers to two earlier ones); the root refers to all, so its
// closure is exactly n paths. Sizes mix many small files with a few large ones.
const DATA_NIX = `{ n, mediumMiB, bigMiB, seed }:
let
  sys = builtins.currentSystem;
  semi = bytes: "/usr/bin/head -c \${toString bytes} /dev/urandom | /usr/bin/tr '\\\\000-\\\\377' '${ALPHABET}'";
  mk = name: script: builtins.derivation { inherit name; system = sys; builder = "/bin/sh"; args = [ "-c" script ]; };
  mod = a: b: a - (a / b) * b;
  size = i: if mod i 100 == 0 then 8388608 else if mod i 10 == 0 then 1048576 else if mod i 3 == 0 then 131072 else 4096 * (1 + mod i 16);
  refsOf = i: if i == 1 then "" else "\${node ((i - 1) / 2 + 1)} \${node ((i - 1) / 3 + 1)}";
  node = i: builtins.elemAt nodes (i - 1);
  nodes = builtins.genList (k: let i = k + 1; in mk "bench-\${seed}-p\${toString i}"
    "/usr/bin/mkdir -p $out/share && \${semi (size i)} > $out/share/data && echo \${toString i} \${refsOf i} > $out/share/refs")
    (n - 1);
in {
  closure = mk "bench-\${seed}-root" "echo \${toString nodes} > $out";
  medium = mk "bench-\${seed}-medium-\${toString mediumMiB}m" "/usr/bin/mkdir -p $out && \${semi (mediumMiB * 1048576)} > $out/data";
  big = mk "bench-\${seed}-big-\${toString bigMiB}m" "/usr/bin/mkdir -p $out && \${semi (bigMiB * 1048576)} > $out/data";
}
`;

export interface Sizes {
  closurePaths: number;
  mediumMiB: number;
  bigMiB: number;
}

export interface PathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
}

export interface BenchNix {
  dir: string;
  store: string;
  /** The isolated environment every Nix call gets (also for the larder client, which runs Nix). */
  env(): NodeJS.ProcessEnv;
  /** Runs a Nix command isolated; Nix sends the credentials from setToken. */
  nix(args: string[], timeoutMs?: number): Promise<RunResult>;
  setToken(url: string, token: string): Promise<void>;
}

export async function createBenchNix(dir: string): Promise<BenchNix> {
  const conf = join(dir, "conf");
  await mkdir(conf, { recursive: true });
  await mkdir(join(dir, "home"), { recursive: true });
  await writeFile(join(conf, "nix.conf"), NIX_CONF);
  let counter = 0;
  const store = join(dir, "store");
  const env = (): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NIX_CONF_DIR: conf,
    HOME: join(dir, "home"),
    NIX_STATE_DIR: join(dir, "state"),
    NIX_LOG_DIR: join(dir, "log"),
    // A fresh narinfo disk cache per call, so no answer is remembered between servers.
    XDG_CACHE_HOME: join(dir, `cache-${++counter}`),
  });
  return {
    dir,
    store,
    env,
    nix(args, timeoutMs = 1_800_000) {
      const [cmd, ...rest] = args;
      return run(cmd as string, rest, { env: env(), timeoutMs });
    },
    async setToken(url, token) {
      const file = join(conf, "netrc");
      await writeFile(file, `machine ${new URL(url).hostname}\nlogin bench\npassword ${token}\n`);
      await chmod(file, 0o600);
    },
  };
}

export interface BenchData {
  closureRoot: string;
  closure: PathInfo[];
  medium: PathInfo;
  big: PathInfo;
  buildSeconds: number;
}

export async function buildData(nx: BenchNix, sizes: Sizes, seed: string): Promise<BenchData> {
  const file = join(nx.dir, "data.nix");
  await writeFile(file, DATA_NIX);
  const args = ["--arg", "n", String(sizes.closurePaths), "--arg", "mediumMiB", String(sizes.mediumMiB), "--arg", "bigMiB", String(sizes.bigMiB), "--argstr", "seed", seed];
  const built = await nx.nix(["nix-build", "--store", nx.store, file, ...args, "-A", "closure", "-A", "medium", "-A", "big", "--no-out-link"]);
  const [closureRoot, medium, big] = built.stdout.trim().split("\n");
  if (closureRoot === undefined || medium === undefined || big === undefined) throw new Error(`nix-build printed ${JSON.stringify(built.stdout)}, expected three store paths`);
  const info = async (p: string, recursive: boolean): Promise<PathInfo[]> =>
    JSON.parse((await nx.nix(["nix", "--store", nx.store, "path-info", "--json", ...(recursive ? ["-r"] : []), p])).stdout) as PathInfo[];
  const closure = await info(closureRoot, true);
  const [mediumInfo] = await info(medium, false);
  const [bigInfo] = await info(big, false);
  return { closureRoot, closure, medium: mediumInfo as PathInfo, big: bigInfo as PathInfo, buildSeconds: built.seconds };
}

/** The 32-character hash part of a store path. */
export function storeHash(storePath: string): string {
  return storePath.slice("/nix/store/".length, "/nix/store/".length + 32);
}

export const totalNarBytes = (paths: PathInfo[]): number => paths.reduce((s, p) => s + p.narSize, 0);

/** Reads `URL:` from a narinfo in a flat binary cache directory. */
export async function flatNarUrl(flatDir: string, storePath: string): Promise<string> {
  const text = await readFile(join(flatDir, `${storeHash(storePath)}.narinfo`), "utf8");
  const m = /^URL: (.+)$/m.exec(text);
  if (!m) throw new Error(`${storeHash(storePath)}.narinfo in ${flatDir} has no URL line`);
  return m[1] as string;
}

export async function flatNarFiles(flatDir: string): Promise<string[]> {
  return (await readdir(join(flatDir, "nar"))).map((f) => join(flatDir, "nar", f));
}
