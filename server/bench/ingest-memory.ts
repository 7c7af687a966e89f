/**
 * `node server/bench/ingest-memory.ts [--big-mib 1024] [--bzip2-mib 256]` — larderd's peak
 * memory while the real Nix 2.8 client pushes a big NAR in the compressions where decoding used
 * to buffer whole NARs: xz (Nix's default, no `?compression=`) and bzip2. Each push goes to a
 * fresh larderd (SQLite + local disk), so its VmHWM is that push's peak. Prints one line per push.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildData, createBenchNix } from "./data.ts";
import { sampleRss, startLarderd } from "./larderd.ts";

const { values } = parseArgs({ options: { "big-mib": { type: "string" }, "bzip2-mib": { type: "string" }, keep: { type: "boolean" } } });
const bigMiB = Number(values["big-mib"] ?? 1024);
const bzip2MiB = Number(values["bzip2-mib"] ?? 256);
const work = await mkdtemp(join(tmpdir(), "larder-ingest-memory-"));
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

try {
  const nx = await createBenchNix(join(work, "nix"));
  log(`building a ${bigMiB} MiB and a ${bzip2MiB} MiB path`);
  const data = await buildData(nx, { closurePaths: 2, mediumMiB: bzip2MiB, bigMiB }, String(Date.now()));
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
