/**
 * Raw HTTP/1.1 over node:net, so a test controls every byte on the wire (header case, chunked
 * framing, split points) the way attic's Rust client (reqwest/hyper) writes them.
 */
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  json<T = unknown>(): T;
}

/** hyper's chunked encoding: `<hex size>\r\n<bytes>\r\n` per chunk, then `0\r\n\r\n`. */
export function chunked(parts: Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (p.length === 0) continue;
    out.push(Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from("\r\n"));
  }
  out.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(out);
}

/** Splits a buffer into pieces of at most `size` bytes. */
export function pieces(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

function parse(buf: Buffer): RawResponse | undefined {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number((head[0] ?? "").split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const c = line.indexOf(":");
    headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
  }
  let body = buf.subarray(end + 4);
  if (headers["content-length"] !== undefined) {
    const n = Number(headers["content-length"]);
    if (body.length < n) return undefined;
    body = body.subarray(0, n);
  } else if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    let i = 0;
    for (;;) {
      const nl = body.indexOf("\r\n", i);
      if (nl < 0) return undefined;
      const n = parseInt(body.subarray(i, nl).toString(), 16);
      if (n === 0) break;
      if (body.length < nl + 2 + n + 2) return undefined;
      parts.push(body.subarray(nl + 2, nl + 2 + n));
      i = nl + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  }
  const text = body.toString("utf8");
  return { status, headers, body, text, json: <T>() => JSON.parse(text) as T };
}

/**
 * Sends `head` (request line and headers, without the blank line) and `body` bytes as they are,
 * in the pieces given (with a short pause between them so the server sees them arrive apart),
 * and reads one response.
 */
export async function rawRequest(url: string, head: string[], body: Buffer[] = [], pauseMs = 2): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buf = Buffer.alloc(0);
  const response = new Promise<RawResponse>((resolve, reject) => {
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parse(buf);
      if (r) {
        socket.destroy();
        resolve(r);
      }
    });
    socket.on("error", (e) => reject(e));
    socket.on("close", () => {
      const r = parse(buf);
      if (r) resolve(r);
      else reject(new Error(`connection closed before a whole response arrived: ${JSON.stringify(buf.toString("latin1").slice(0, 200))}`));
    });
  });
  socket.write(`${head.join("\r\n")}\r\n\r\n`);
  for (const piece of body) {
    if (socket.destroyed) break;
    socket.write(piece);
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return response;
}
