/**
 * Pushes and pulls from several clients at once against a running larderd, recording every
 * answer, for fault tests (database restarts, password rotation): what users see while the
 * fault lasts, and whether every acknowledged push is served afterwards.
 */
import { createHash, randomBytes } from "node:crypto";
import { encodeNixBase32 } from "../../src/nix/base32.ts";
import { narOfFile } from "./nar.ts";

export interface Answer {
  op: "push" | "narinfo" | "nar";
  /** HTTP status, or "error" when the connection failed or the answer did not come in time. */
  status: number | "error";
  at: number;
  detail?: string;
}

export interface Pushed {
  hash: string;
  nar: Buffer;
  narHash: string;
  /** The status the push got. */
  status: number | "error";
}

export interface Load {
  answers: Answer[];
  pushed: Pushed[];
  /** Resolves at the first moment after `since` when a push and a pull have both succeeded. */
  recovered(since: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** Creates a private cache through attic's API with `token` (which needs create-cache). */
export async function createCache(url: string, token: string, name: string): Promise<void> {
  const res = await fetch(`${url}/_api/v1/cache-config/${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ keypair: "Generate", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: [] }),
  });
  if (res.status !== 200) throw new Error(`creating cache ${name}: ${res.status} ${await res.text()}`);
}

async function attempt(answers: Answer[], op: Answer["op"], run: () => Promise<Response>): Promise<Response | undefined> {
  try {
    const res = await run();
    answers.push({ op, status: res.status, at: Date.now(), ...(res.status >= 500 && { detail: await res.clone().text() }) });
    return res;
  } catch (e) {
    answers.push({ op, status: "error", at: Date.now(), detail: String((e as Error).cause ?? e) });
    return undefined;
  }
}

export function pushPath(url: string, token: string, cache: string): { hash: string; nar: Buffer; narHash: string; send: () => Promise<Response> } {
  const hash = encodeNixBase32(randomBytes(20));
  const nar = narOfFile(randomBytes(1024 + Math.floor(Math.random() * 16384)));
  const narHash = createHash("sha256").update(nar).digest("hex");
  const meta = { cache, store_path_hash: hash, store_path: `/nix/store/${hash}-load`, references: [], system: null, deriver: null, sigs: [], ca: null, nar_hash: `sha256:${narHash}`, nar_size: nar.length };
  const send = () =>
    fetch(`${url}/_api/v1/upload-path`, {
      method: "PUT",
      headers: { authorization: `bearer ${token}`, "x-attic-nar-info": JSON.stringify(meta) },
      body: nar,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  return { hash, nar, narHash, send };
}

/** `clients` loops, each pushing a fresh path and then pulling (narinfo + NAR) one that was acknowledged. */
export function startLoad(url: string, token: string, cache: string, clients = 8): Load {
  const answers: Answer[] = [];
  const pushed: Pushed[] = [];
  const acked: Pushed[] = [];
  let running = true;
  const auth = { authorization: `bearer ${token}` };
  const client = async () => {
    while (running) {
      const p = pushPath(url, token, cache);
      const res = await attempt(answers, "push", p.send);
      await res?.arrayBuffer().catch(() => undefined);
      const entry: Pushed = { hash: p.hash, nar: p.nar, narHash: p.narHash, status: res?.status ?? "error" };
      pushed.push(entry);
      if (res?.status === 200) acked.push(entry);
      const pick = acked[Math.floor(Math.random() * acked.length)];
      if (!pick) continue;
      const info = await attempt(answers, "narinfo", () => fetch(`${url}/${cache}/${pick.hash}.narinfo`, { headers: auth, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }));
      const text = info ? await info.text().catch(() => "") : "";
      const narUrl = /^URL: (.*)$/m.exec(text)?.[1];
      if (info?.status !== 200 || narUrl === undefined) continue;
      const nar = await attempt(answers, "nar", () => fetch(`${url}/${cache}/${narUrl}`, { headers: auth, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }));
      await nar?.arrayBuffer().catch(() => undefined);
    }
  };
  const done = Promise.all(Array.from({ length: clients }, client));
  return {
    answers,
    pushed,
    async recovered(since, timeoutMs) {
      const deadline = since + timeoutMs;
      for (;;) {
        const after = answers.filter((a) => a.at > since && a.status === 200);
        if (after.some((a) => a.op === "push") && after.some((a) => a.op === "narinfo")) {
          return Math.min(...after.map((a) => a.at)) - since;
        }
        if (Date.now() > deadline) throw new Error(`no successful push and pull within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/**
 * Every acknowledged push is served whole; every other push is either served whole or absent —
 * never a narinfo without its NAR, never other bytes. Returns the problems found.
 */
export async function checkServed(url: string, token: string, cache: string, pushed: Pushed[]): Promise<string[]> {
  const problems: string[] = [];
  const auth = { authorization: `bearer ${token}` };
  for (const p of pushed) {
    const info = await fetch(`${url}/${cache}/${p.hash}.narinfo`, { headers: auth });
    const text = await info.text();
    if (info.status === 404 && p.status !== 200) continue;
    if (info.status !== 200) {
      problems.push(`${p.hash} (push ${p.status}): narinfo ${info.status}`);
      continue;
    }
    const narUrl = /^URL: (.*)$/m.exec(text)?.[1];
    const nar = await fetch(`${url}/${cache}/${narUrl}`, { headers: auth });
    const bytes = Buffer.from(await nar.arrayBuffer());
    if (nar.status !== 200 || !bytes.equals(p.nar)) problems.push(`${p.hash} (push ${p.status}): NAR ${nar.status}, ${bytes.length} bytes`);
  }
  return problems;
}
