/** Cutting off clients that stop sending a body they started. */
import type { IncomingMessage, ServerResponse } from "node:http";

/** Whether the request announces a body (Content-Length > 0, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

/**
 * Closes the connection when no byte arrives for `ms` while the body is being received. Only
 * while receiving: the handler's own work after the body (storing a large NAR) is not idleness,
 * and once the answer is sent Node's keep-alive timeout takes over the socket's timer.
 */
export function bodyIdleTimeout(req: IncomingMessage, res: ServerResponse, ms: number): void {
  const socket = req.socket;
  if (ms <= 0) return;
  socket.setTimeout(ms);
  req.once("end", () => {
    if (!res.writableFinished && !socket.destroyed) socket.setTimeout(0);
  });
}
