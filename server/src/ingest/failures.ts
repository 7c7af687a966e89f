/**
 * Failures of an ingest that are nobody's fault in the request: the disk or the storage backend
 * (a 5xx the client retries, counted as a backend error) and a client that went away (no answer
 * will be read; logged quietly).
 */
import { ServerError } from "../errors.ts";

// Out of room: 507. Other errors of the file system or the machine: 503.
const NO_SPACE = new Set(["ENOSPC", "EDQUOT", "EFBIG"]);
const SYSTEM = new Set(["EIO", "EROFS", "EMFILE", "ENFILE", "EACCES", "EPERM", "ENOENT", "ENOTDIR", "ESTALE", "EBUSY", "ENOMEM"]);

/** The system error code of `e` or of what it wraps (storage backends keep the original as `cause`). */
function code(e: unknown): string | undefined {
  for (let depth = 0; depth < 4 && typeof e === "object" && e !== null; depth++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === "string") return c;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** An error of the operating system about files (as opposed to bad bytes from the client). */
export function isStorageFailure(e: unknown): boolean {
  const c = code(e);
  return c !== undefined && (NO_SPACE.has(c) || SYSTEM.has(c));
}

export function isOutOfSpace(e: unknown): boolean {
  const c = code(e);
  return c !== undefined && NO_SPACE.has(c);
}

/** A 507 for a full disk, else a 503; either way a storage backend error, with the cause logged. */
export function storageFailure(e: unknown, where: "spool" | "storage"): ServerError {
  if (e instanceof ServerError) return e;
  if (isOutOfSpace(e)) return new ServerError("InsufficientStorage", `no space left in the ${where}`, { backend: "storage", cause: e });
  return new ServerError("ServiceUnavailable", `the ${where} failed`, { backend: "storage", cause: e });
}

export function clientGone(): ServerError {
  return new ServerError("RequestError", "General request error: the client closed the connection before the upload ended.", { clientGone: true });
}
