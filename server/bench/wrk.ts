/**
 * Load runs with wrk (one thread, its own process): requests cycle through a list of paths, and
 * a Lua `done` hook prints the summary as one JSON line, so nothing is scraped from wrk's table.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./proc.ts";

const SCRIPT = `
local reqs, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("GET", line)
  end
  -- Connections start at different places in the list.
  i = math.random(n) - 1
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRK-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,"socket_errors":%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
`;

export interface LoadResult {
  requests: number;
  rps: number;
  mibPerSec: number;
  p50Us: number;
  p99Us: number;
  /** Responses with status >= 400. */
  statusErrors: number;
}

export interface LoadRun {
  /** Base URL, e.g. http://127.0.0.1:1234 */
  origin: string;
  /** Absolute paths, cycled through. */
  paths: string[];
  connections: number;
  seconds: number;
  headers?: Record<string, string>;
  /** "ok": every answer must be 2xx; "missing": every answer must be 404-ish (>= 400). */
  expect: "ok" | "missing";
}

export async function runWrk(bin: string, workDir: string, r: LoadRun): Promise<LoadResult> {
  const script = join(workDir, "paths.lua");
  await writeFile(script, SCRIPT);
  const list = join(workDir, `paths-${process.hrtime.bigint()}.txt`);
  await writeFile(list, `${r.paths.join("\n")}\n`);
  const headerArgs = Object.entries(r.headers ?? {}).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const args = ["-t1", `-c${r.connections}`, `-d${r.seconds}s`, "--timeout", "30s", ...headerArgs, "-s", script, `${r.origin}/`, "--", list];
  const out = await run(bin, args, { timeoutMs: (r.seconds + 60) * 1000 });
  const line = out.stdout.split("\n").find((l) => l.startsWith("WRK-JSON "));
  if (!line) throw new Error(`wrk printed no summary: ${out.stdout.slice(-500)} ${out.stderr.slice(-500)}`);
  const s = JSON.parse(line.slice("WRK-JSON ".length)) as { requests: number; duration_us: number; bytes: number; p50_us: number; p99_us: number; status_errors: number; socket_errors: number };
  if (s.requests === 0) throw new Error(`wrk made no requests against ${r.origin}${r.paths[0]}`);
  if (s.socket_errors > 0) throw new Error(`wrk saw ${s.socket_errors} socket errors against ${r.origin}${r.paths[0]}`);
  if (r.expect === "ok" && s.status_errors > 0) throw new Error(`${s.status_errors} of ${s.requests} answers from ${r.origin} were errors (expected hits)`);
  // wrk counts the requests still in flight at the end as sent but not answered; allow those.
  if (r.expect === "missing" && s.status_errors < s.requests - r.connections) {
    throw new Error(`${s.requests - s.status_errors} of ${s.requests} answers from ${r.origin} were hits (expected misses)`);
  }
  const seconds = s.duration_us / 1e6;
  return { requests: s.requests, rps: s.requests / seconds, mibPerSec: s.bytes / seconds / 1048576, p50Us: s.p50_us, p99Us: s.p99_us, statusErrors: s.status_errors };
}
