/**
 * `node bench/push-big.ts --work DIR [--rounds 3] [--path NAME]` — `larder push` of one big NAR
 * against `zstd -3 | sha256sum` of the same bytes, alternating, with where the CPU went: the
 * client's and larderd's threads (main, V8's GC workers, libuv's pool) and larderd's major GCs.
 * DIR is a directory `npm run bench -- --keep` left (its Nix store and flat NARs), so no data is
 * built; each round gets a fresh larderd (SQLite, local disk) so the push is never deduplicated.
 * `--path root` pushes the bench's closure instead (its reference is then only the root's NAR:
 * read the push time and the CPU). CLIENT_PROF=DIR / SERVER_PROF=DIR write V8 CPU profiles of
 * the client / larderd. One JSON line on stdout.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createBenchNix } from "./data.ts";
import { startLarderd } from "./larderd.ts";
import { limitPipeline } from "./limit.ts";
import { run } from "./proc.ts";
import { machine } from "./report.ts";

const CLIENT_BIN = fileURLToPath(new URL("../bin/larder.js", import.meta.url));
const TICK = 100;

type Threads = Map<string, number>;

/** CPU seconds (user + system) per thread group of `pid`: main, V8's workers, libuv's pool, other. */
function threadCpu(pid: number): Threads {
  const groups: Threads = new Map();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
    } catch {
      continue;
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const secs = (Number(f[11]) + Number(f[12])) / TICK;
    const group = Number(t) === pid ? "main" : name.startsWith("V8Worker") ? "v8_gc_workers" : name.startsWith("libuv-worker") ? "libuv_pool" : "other";
    groups.set(group, (groups.get(group) ?? 0) + secs);
  }
  return groups;
}

const diff = (after: Threads, before: Threads): Record<string, number> =>
  Object.fromEntries([...after].map(([k, v]) => [k, Number((v - (before.get(k) ?? 0)).toFixed(2))]));

/** Runs a command, sampling its threads' CPU until it exits (the last sample is at most 50 ms old). */
async function runSampled(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpu: Record<string, number> }> {
  const started = process.hrtime.bigint();
  const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr = (stderr + s).slice(-4000)));
  let last: Threads = new Map();
  const timer = setInterval(() => {
    try {
      // Counters only grow; a thread that already exited keeps its last figure.
      for (const [k, v] of threadCpu(child.pid as number)) last.set(k, Math.max(v, last.get(k) ?? 0));
    } catch {
      // Exited between two samples.
    }
  }, 50);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${code}): ${stderr.trim()}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, cpu: diff(last, new Map()) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { work: { type: "string" }, rounds: { type: "string", default: "3" }, path: { type: "string", default: "medium" } } });
  if (values.work === undefined || !existsSync(join(values.work, "nix", "store"))) throw new Error("--work must name a directory kept by `npm run bench -- --keep` (it has nix/store)");
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds <= 0) throw new Error(`--rounds must be a positive whole number (got "${values.rounds}")`);
  const nx = await createBenchNix(join(values.work, "nix"));
  const names = readdirSync(join(values.work, "nix", "store", "nix", "store")).filter((n) => !n.endsWith(".drv") && n.includes(`-${values.path}`));
  if (names.length !== 1) throw new Error(`expected one store path named *-${values.path}* in the kept store, found ${names.length}`);
  const path = `/nix/store/${names[0]}`;
  // The same path's NAR, uncompressed, as `nix copy --to file://?compression=none` wrote it.
  const flat = join(values.work, "flat-none");
  let nar: string | undefined;
  for (const f of readdirSync(flat).filter((n) => n.endsWith(".narinfo"))) {
    const text = await readFile(join(flat, f), "utf8");
    if (text.includes(`StorePath: ${path}\n`)) nar = join(flat, /^URL: (.*)$/m.exec(text)?.[1] as string);
  }
  if (nar === undefined) throw new Error(`${path} has no NAR in ${flat}`);
  const narBytes = readFileSync(nar).length;

  const results = [];
  for (let round = 0; round < rounds; round++) {
    const reference = await limitPipeline({ zstd: "zstd", sha256sum: "sha256sum" }, [nar], 3);
    const dir = await mkdtemp(join(tmpdir(), "larder-push-big-"));
    const gcLog = join(dir, "gc.log");
    const l = await startLarderd({ dir, databaseUrl: `sqlite://${join(dir, "larder.db")}`, storage: { type: "local" }, nodeArgs: ["--trace-gc"], stdoutFile: gcLog, ...(process.env.SERVER_PROF && { cpuProfDir: process.env.SERVER_PROF }) });
    try {
      await l.admin(["create-cache", "push", "--public"]);
      const token = (await l.admin(["make-token", "--sub", "bench", "--validity", "1d", "--push", "*", "--pull", "*"])).trim().split("\n").at(-1) as string;
      const env = { ...nx.env(), XDG_CONFIG_HOME: join(dir, "client") };
      await run(process.execPath, [CLIENT_BIN, "login", "bench", `${l.url}/`, token], { env, timeoutMs: 60_000 });
      await run("sync", []);
      const gcBefore = (await readFile(gcLog, "utf8")).split("Mark-Compact").length - 1;
      const serverBefore = threadCpu(l.pid);
      const push = await runSampled(process.execPath, [...(process.env.CLIENT_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.CLIENT_PROF] : []), CLIENT_BIN, "push", "bench:push", path, "--store", nx.store], env);
      const server = diff(threadCpu(l.pid), serverBefore);
      const gcAfter = (await readFile(gcLog, "utf8")).split("Mark-Compact").length - 1;
      results.push({
        push_s: Number(push.seconds.toFixed(3)),
        reference_s: Number(reference.toFixed(3)),
        ratio: Number((reference / push.seconds).toFixed(3)),
        client_cpu_s: push.cpu,
        server_cpu_s: server,
        server_major_gcs: gcAfter - gcBefore,
      });
    } finally {
      await l.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `${JSON.stringify({ machine: machine(), path, nar_mib: Number((narBytes / 2 ** 20).toFixed(1)), median_ratio: median(results.map((r) => r.ratio)), rounds: results })}\n`,
  );
}

await main();
