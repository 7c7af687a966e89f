/**
 * `node server/bench/ingest-memory.ts [--big-mib 1024] [--bzip2-mib 256]` — larderd's peak
 * memory while the real Nix 2.8 client pushes a big NAR in the compressions where decoding used
 * to buffer whole NARs: xz (Nix's default, no `?compression=`) and bzip2. The files are zeros, as
 * much of a VM image is: the most compressible input, where a decoder without backpressure
 * expands furthest per input chunk (and Nix's own xz is fast on it). Each push goes to a fresh
 * larderd (SQLite + local disk), so its VmHWM is that push's peak. Prints one line per push.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createBenchNix } from "./data.ts";

const ZEROS_NIX = `{ mib, name }: builtins.derivation {
  inherit name; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/usr/bin/head -c \${toString (mib * 1048576)} /dev/zero > $out" ];
}`;
import { sampleRss, startLarderd } from "./larderd.ts";

const { values } = parseArgs({ options: { "big-mib": { type: "string" }, "bzip2-mib": { type: "string" }, keep: { type: "boolean" } } });
const bigMiB = Number(values["big-mib"] ?? 1024);
const bzip2MiB = Number(values["bzip2-mib"] ?? 256);
const work = await mkdtemp(join(tmpdir(), "larder-ingest-memory-"));
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

try {
  const nx = await createBenchNix(join(work, "nix"));
  log(`building a ${bigMiB} MiB and a ${bzip2MiB} MiB path`);
  const expr = join(work, "zeros.nix");
  await writeFile(expr, ZEROS_NIX);
  const seed = String(Date.now());
  const build = async (mib: number): Promise<{ path: string; narSize: number }> => {
    const path = (await nx.nix(["nix-build", "--store", nx.store, expr, "--arg", "mib", String(mib), "--argstr", "name", `zeros-${seed}-${mib}m`, "--no-out-link"])).stdout.trim();
    const [info] = JSON.parse((await nx.nix(["nix", "--store", nx.store, "path-info", "--json", path])).stdout) as Array<{ narSize: number }>;
    return { path, narSize: (info as { narSize: number }).narSize };
  };
  const data = { big: await build(bigMiB), medium: await build(bzip2MiB) };
  for (const [label, path, narSize, query] of [
    ["xz (default)", data.big.path, data.big.narSize, ""],
    ["bzip2", data.medium.path, data.medium.narSize, "?compression=bzip2"],
  ] as const) {
    const larderd = await startLarderd({ dir: join(work, `larderd-${label.split(" ")[0]}`), databaseUrl: `sqlite://${join(work, `${label.split(" ")[0]}.db`)}`, storage: { type: "local" } });
    try {
      await larderd.admin(["create-cache", "mem"]);
      const out = (await larderd.admin(["make-token", "--sub", "bench", "--validity", "1d", "--pull", "*", "--push", "*"])).trim().split("\n");
      await nx.setToken(larderd.url, out[out.length - 1] as string);
      const before = larderd.memory();
      log(`nix copy ${label} of ${(narSize / 2 ** 20).toFixed(0)} MiB`);
      const sampler = sampleRss(larderd.pid);
      const copied = await nx.nix(["nix", "copy", "--store", nx.store, "--to", `${larderd.url}/mem${query}`, path]);
      const sampled = sampler.stop();
      const after = larderd.memory();
      process.stdout.write(
        `${label}: NAR ${(narSize / 2 ** 20).toFixed(0)} MiB, larderd VmHWM ${after.hwmMiB.toFixed(0)} MiB ` +
          `(RSS ${before.rssMiB.toFixed(0)} MiB before, largest sample ${sampled.toFixed(0)} MiB), nix copy ${copied.seconds.toFixed(0)} s\n`,
      );
    } finally {
      await larderd.stop();
    }
  }
} finally {
  if (!values.keep) await rm(work, { recursive: true, force: true });
}
