/**
 * Request ids: the client's `X-Request-Id` when it is a plain token, else a random prefix per
 * process and a counter, unique across api-servers without a random UUID per request (the hot
 * path's requests are tens of microseconds).
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";

const ID_PREFIX = randomBytes(6).toString("base64url");
let requestCount = 0;

export function requestId(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && /^[\w.-]{1,64}$/.test(given) ? given : `${ID_PREFIX}-${(++requestCount).toString(36)}`;
}
