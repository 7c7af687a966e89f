/** A raw HTTP/1.1 connection a test drives byte by byte, watching whether the server closes it. */
import { connect, type Socket } from "node:net";

export interface Exchange {
  /** Everything the server sent. */
  text(): string;
  status(): number;
  /** Resolves when the server has closed the connection (or rejects after `ms`). */
  closed(ms: number): Promise<void>;
  write(b: Buffer | string): void;
  socket: Socket;
}

/** A keep-alive connection under the test's control: what is sent, and whether the server closes it. */
export async function open(url: string): Promise<Exchange> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let received = Buffer.alloc(0);
  let ended = false;
  const waiters: Array<() => void> = [];
  socket.on("data", (d: Buffer) => (received = Buffer.concat([received, d])));
  socket.on("error", () => {});
  socket.on("close", () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    text: () => received.toString("latin1"),
    status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(received.toString("latin1"))?.[1] ?? 0),
    write: (b) => void socket.write(b),
    closed: (ms) =>
      ended
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => reject(new Error(`connection still open after ${ms} ms; got ${JSON.stringify(received.toString("latin1").slice(0, 200))}`)), ms);
            waiters.push(() => {
              clearTimeout(t);
              resolve();
            });
          }),
  };
}

export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

