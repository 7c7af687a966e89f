/**
 * `node server/bench/ingest-memory.ts [--big-mib 1024] [--compressions none,zstd,br,xz,bzip2] [--no-push]`
 * — larderd's peak memory while a big NAR is pushed: by the real Nix 2.8 client in every upload
 * compression (xz is Nix's default, no `?compression=`), then by `larder push` (a zstd body, then
 * an uncompressed one). The file is zeros, as much of a VM image is: the most compressible input,
 * where a decoder without backpressure expands furthest per input chunk (and Nix's own xz is fast
 * on it). Each push goes to a fresh larderd (SQLite + local disk), so its VmHWM is that push's
 * peak. Prints one line per push.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createBenchNix } from "./data.ts";

const ZEROS_NIX = `{ mib, name }: builtins.derivation {
  inherit name; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/usr/bin/head -c \${toString (mib * 1048576)} /dev/zero > $out" ];
}`;
import { sampleRss, startLarderd } from "./larderd.ts";
import { run } from "./proc.ts";

const COMPRESSIONS = ["none", "zstd", "br", "xz", "bzip2"] as const;
type Compression = (typeof COMPRESSIONS)[number];
const { values } = parseArgs({ options: { "big-mib": { type: "string" }, compressions: { type: "string" }, push: { type: "boolean", default: true }, keep: { type: "boolean" } }, allowNegative: true });
const bigMiB = Number(values["big-mib"] ?? 1024);
const wanted = (values.compressions?.split(",") ?? [...COMPRESSIONS]) as Compression[];
for (const c of wanted) if (!COMPRESSIONS.includes(c)) throw new Error(`--compressions: ${c} is not one of ${COMPRESSIONS.join(", ")}`);
const work = await mkdtemp(join(tmpdir(), "larder-ingest-memory-"));
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const CLIENT_BIN = fileURLToPath(new URL("../bin/larder.js", import.meta.url));

try {
  const nx = await createBenchNix(join(work, "nix"));
  log(`building a ${bigMiB} MiB path`);
  const expr = join(work, "zeros.nix");
  await writeFile(expr, ZEROS_NIX);
  const path = (await nx.nix(["nix-build", "--store", nx.store, expr, "--arg", "mib", String(bigMiB), "--argstr", "name", `zeros-${Date.now()}-${bigMiB}m`, "--no-out-link"])).stdout.trim();
  const [info] = JSON.parse((await nx.nix(["nix", "--store", nx.store, "path-info", "--json", path])).stdout) as Array<{ narSize: number }>;
  const narMiB = (info as { narSize: number }).narSize / 2 ** 20;
  // nix copy in each compression (xz is Nix's default), then larder push (zstd body, then uncompressed).
  const runs: { label: string; push: (url: string, token: string, dir: string) => Promise<{ seconds: number }> }[] = [
    ...wanted.map((c) => ({
      label: `nix copy ${c}${c === "xz" ? " (default)" : ""}`,
      push: (url: string) => nx.nix(["nix", "copy", "--store", nx.store, "--to", `${url}/mem${c === "xz" ? "" : `?compression=${c}`}`, path]),
    })),
    ...(values.push
      ? [["zstd body", []], ["uncompressed body", ["--no-compress"]]].map(([label, flags]) => ({
          label: `larder push, ${label as string}`,
          push: async (url: string, token: string, dir: string) => {
            const env = { ...nx.env(), XDG_CONFIG_HOME: join(dir, "client") };
            await run(process.execPath, [CLIENT_BIN, "login", "bench", `${url}/`, token], { env, timeoutMs: 60_000 });
            return run(process.execPath, [CLIENT_BIN, "push", "bench:mem", path, "--store", nx.store, ...(flags as string[])], { env, timeoutMs: 1_800_000 });
          },
        }))
      : []),
  ];
  for (const [i, r] of runs.entries()) {
    const dir = join(work, `larderd-${i}`);
    const larderd = await startLarderd({ dir, databaseUrl: `sqlite://${join(work, `${i}.db`)}`, storage: { type: "local" } });
    try {
      await larderd.admin(["create-cache", "mem"]);
      const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
      const token = out[out.length - 1] as string;
      await nx.setToken(larderd.url, token);
      const before = larderd.memory();
      log(`${r.label} of ${narMiB.toFixed(0)} MiB`);
      const sampler = sampleRss(larderd.pid);
      const done = await r.push(larderd.url, token, dir);
      const sampled = sampler.stop();
      const after = larderd.memory();
      process.stdout.write(
        `${r.label}: NAR ${narMiB.toFixed(0)} MiB, larderd VmHWM ${after.hwmMiB.toFixed(0)} MiB ` +
          `(RSS ${before.rssMiB.toFixed(0)} MiB before, largest sample ${sampled.toFixed(0)} MiB), ${done.seconds.toFixed(0)} s\n`,
      );
    } finally {
      await larderd.stop();
    }
  }
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
