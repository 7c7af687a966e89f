/**
 * What happens to a request body the handler did not read to the end (an early 4xx, a refused
 * upload): left alone, it stays paused in the socket, and the next request on that keep-alive
 * connection is never parsed. A short remainder is read and discarded so the connection can be
 * reused; a longer (or unknown) one gets `Connection: close`, and after the answer is sent the
 * connection lingers briefly, discarding what the client is still sending, so the client reads
 * the answer instead of a reset.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** A remainder up to this size is drained and the connection kept. */
export const DRAIN_BYTES = 256 * 1024;
/** After the answer, discard at most this much, for at most this long, before closing. */
const LINGER_BYTES = 4 * 1024 * 1024;
const LINGER_MS = 2000;

function remaining(req: IncomingMessage, received: number): number | undefined {
  const declared = req.headers["content-length"];
  return declared === undefined ? undefined : Number(declared) - received;
}

/**
 * Called as the answer is about to be sent. Returns true when the connection must close (the
 * caller sets `Connection: close`).
 */
export function settleUnreadBody(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.complete || req.destroyed) return false;
  const socket = req.socket as Socket | null;
  if (!socket || socket.destroyed) return false;
  let discarded = 0;
  const left = remaining(req, req.readableLength);
  req.removeAllListeners("data");
  req.removeAllListeners("readable");
  if (left !== undefined && left <= DRAIN_BYTES) {
    req.on("data", () => {});
    req.resume();
    return false;
  }
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) socket.destroy();
  });
  req.resume();
  // Node closes a `Connection: close` connection with destroySoon() once the answer is written;
  // half-close instead, and destroy when the client is done or the linger bound is reached.
  socket.destroySoon = function lingerThenDestroy(this: Socket) {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    this.once("end", () => this.destroy());
    return this;
  };
  res.once("close", () => {
    // If the answer could not be written at all (client gone), do not linger.
    if (!res.writableFinished) socket.destroy();
  });
  return true;
}
