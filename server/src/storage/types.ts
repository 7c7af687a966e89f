import type { Readable } from "node:stream";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export type StorageConfig =
  | { type: "local"; path: string }
  | {
      type: "s3";
      bucket: string;
      region: string;
      endpoint?: string;
      credentials?: S3Credentials;
      prefix?: string;
    };

export type StorageStrategy = "round-robin" | "in-order" | "split" | "least-used";

/** One configured backend: where it is, and what placement needs to know about it. */
export interface BackendConfig {
  /** Stable name, recorded in the database with every NAR stored on the backend. */
  name: string;
  storage: StorageConfig;
  /** Most stored bytes allowed; absent: unlimited. */
  capacity?: number;
  /** Share under the split strategy. */
  weight: number;
  /** S3: answer NAR downloads with a redirect to a presigned URL. */
  presignDownloads: boolean;
  /** Local storage behind nginx: URL prefix of the internal location that serves its directory. */
  accelRedirectPrefix?: string;
}

/** Which backends a new object may go to, and how one is picked. */
export interface Placement {
  strategy: StorageStrategy;
  /** Backend names, in the configured order. */
  backends: string[];
}

export interface StorageSetup {
  backends: BackendConfig[];
  /** The server's placement (all backends). */
  placement: Placement;
  /** Per-cache placements, by cache name. */
  caches: Map<string, Placement>;
  /** How long a moved NAR's old copy is kept for readers that were already pointed at it. */
  retireAfterSeconds: number;
}

/** The name a single, unnamed backend has (and the one existing NAR rows were given when backends got names). */
export const DEFAULT_BACKEND = "default";

export interface ByteRange {
  start: number;
  /** Inclusive, like HTTP's Range header. */
  end?: number;
}

export interface StoredObject {
  size: number;
}

export interface OpenedFile {
  handle: import("node:fs/promises").FileHandle;
  start: number;
  /** Inclusive; start > end for an empty object. */
  end: number;
}

export interface Storage {
  /** Streams `body` to `key`. Atomic: readers see the whole object or nothing (temp file + rename; S3 single PUT or
   *  completed multipart upload). Overwriting an existing key is allowed (keys are content addresses). Returns the
   *  number of bytes stored. If `body` errors, nothing is left behind and the error is rethrown. */
  put(key: string, body: Readable): Promise<StoredObject>;
  /** Stores the whole file at `path` under `key`, atomically and durably as put() does. The backend may take the
   *  file itself instead of copying it (local storage renames it when it is on the same filesystem), so `path` may
   *  be gone afterwards; the caller must not write to it again, and removes it if it is still there. On failure
   *  nothing is stored under `key`. Optional: storeFile() streams the file through put() without it. */
  putFile?(key: string, path: string): Promise<StoredObject>;
  /** A stream of the object's bytes (or of the range). Throws StorageNotFoundError if absent. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** The object's file, opened, with the inclusive byte span to send (the range, or all of it), for a server that
   *  copies the bytes to a socket itself; the caller closes the handle. The same errors as get(). Optional: only
   *  backends with local files have it. */
  openFile?(key: string, range?: ByteRange): Promise<OpenedFile>;
  head(key: string): Promise<StoredObject | null>;
  /** Deleting a missing key succeeds (GC must never stall on an already-missing object). */
  delete(key: string): Promise<void>;
  /** A short-lived URL a client can GET directly, or null when the backend cannot make one (local). */
  presignGet(key: string, expiresInSeconds: number): Promise<string | null>;
  /** A short-lived URL a client can PUT one object to without credentials (S3). With `contentMd5` (base64) the PUT
   *  must carry that Content-MD5, and S3 refuses a body that does not match it. Backends without direct URLs leave
   *  it out and the server receives the upload itself. */
  presignPut?(key: string, expiresInSeconds: number, contentMd5?: string): Promise<string>;
  /** Every key under a prefix, for GC sweeps and tests. */
  list(prefix?: string): AsyncIterable<{ key: string; size: number }>;
  /** Cheap round trip for the health endpoint; throws when the backend is unusable. */
  check(): Promise<void>;
}

export class StorageNotFoundError extends Error {
  override name = "StorageNotFoundError";
}

/** Wraps vendor errors; the message is safe to log and never contains credentials. */
export class StorageError extends Error {
  override name = "StorageError";
}

const SEGMENT = /^[a-z0-9._-]+$/;

/** Keys are relative paths of `[a-z0-9._-]` segments; anything else could escape the storage root or collide. */
export function assertValidKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > 1024) {
    throw new StorageError(`invalid storage key ${JSON.stringify(key)}: must be 1 to 1024 characters`);
  }
  for (const segment of key.split("/")) {
    // A leading dot would allow "." and ".." and collide with the local backend's ".tmp" directory.
    if (!SEGMENT.test(segment) || segment.startsWith(".")) {
      throw new StorageError(
        `invalid storage key ${JSON.stringify(key)}: segments must be non-empty [a-z0-9._-] and not start with "."`,
      );
    }
  }
}

/** Prefixes for `list` follow the key alphabet too, but may be empty or end in "/" or part of a segment. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === "") return;
  const trimmed = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  try {
    assertValidKey(trimmed);
  } catch {
    throw new StorageError(`invalid storage key prefix ${JSON.stringify(prefix)}: use [a-z0-9._-] segments joined by "/"`);
  }
}

/** A range whose start lies at or past the end of the object (HTTP 416). */
export class StorageRangeError extends StorageError {
  override name = "StorageRangeError";
}

export function assertValidRange(key: string, range: ByteRange | undefined): void {
  if (range === undefined) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new StorageError(`invalid byte range ${JSON.stringify(range)} for ${key}: need 0 <= start <= end`);
  }
}
