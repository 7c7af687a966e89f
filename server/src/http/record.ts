/** What every answered request leaves behind: its count and time by route, and a log line for writes and failures. */
import type { Logger } from "pino";
import type { AppContext } from "../context.ts";

/** `route` is the URL pattern; `log` is asked for only when a line is written. */
export function recordResponse(ctx: AppContext, route: string, method: string, url: string, status: number, ms: number, log: () => Logger): void {
  ctx.metrics.requests.inc({ route, method, status: String(status) });
  ctx.metrics.latency.observe({ route, method }, ms / 1000);
  if (status >= 500 || (method !== "GET" && method !== "HEAD")) {
    log().info({ method, url, status, ms: Math.round(ms) }, "request");
  } else if (ctx.log.isLevelEnabled("debug")) {
    log().debug({ method, url, status, ms: Math.round(ms) }, "request");
  }
}
