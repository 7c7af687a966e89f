/**
 * The closed set of error kinds the server answers with, in attic's JSON shape
 * `{code, error, message}`. `httpStatus` is exhaustive: a new kind does not compile until it
 * has a status. 5xx bodies never carry internal detail; that goes to the log with the request id.
 */
export type ErrorKind =
  | "NotFound"
  | "Unauthorized"
  | "NoSuchCache"
  | "NoSuchObject"
  | "CacheAlreadyExists"
  | "AccessError"
  | "RequestError"
  | "InvalidCompressionType"
  | "InvalidCacheName"
  | "InvalidStorePathHash"
  | "PayloadTooLarge"
  | "Conflict"
  | "MethodNotAllowed"
  | "InternalServerError"
  | "ServiceUnavailable"
  | "InsufficientStorage"
  | "NoSuchEnvironment"
  | "NoSuchDeployment"
  /** A deployment's target is not wholly in the cache and signed by its key (body: ClosureRefusal). */
  | "ClosureIncomplete";

export function httpStatus(kind: ErrorKind): number {
  switch (kind) {
    case "NotFound":
    case "NoSuchCache":
    case "NoSuchObject":
    case "NoSuchEnvironment":
    case "NoSuchDeployment":
      return 404;
    case "Unauthorized":
      return 401;
    case "AccessError":
      return 403;
    case "CacheAlreadyExists":
    case "RequestError":
    case "InvalidCompressionType":
    case "InvalidCacheName":
    case "InvalidStorePathHash":
      return 400;
    case "MethodNotAllowed":
      return 405;
    case "Conflict":
      return 409;
    case "PayloadTooLarge":
      return 413;
    case "ClosureIncomplete":
      return 422;
    case "InternalServerError":
      return 500;
    case "ServiceUnavailable":
      return 503;
    case "InsufficientStorage":
      return 507;
    default: {
      const unreachable: never = kind;
      return unreachable;
    }
  }
}

const DEFAULT_MESSAGES: Record<ErrorKind, string> = {
  NotFound: "The URL you requested was not found.",
  Unauthorized: "Unauthorized.",
  NoSuchCache: "The requested cache does not exist.",
  NoSuchObject: "The requested object does not exist.",
  CacheAlreadyExists: "The cache already exists.",
  AccessError: "Access error: User does not have permission to complete this action.",
  RequestError: "General request error.",
  InvalidCompressionType: "Invalid compression type.",
  InvalidCacheName: "Invalid cache name.",
  InvalidStorePathHash: "Invalid store path hash.",
  PayloadTooLarge: "The request body is too large.",
  Conflict: "The request conflicts with the current state.",
  MethodNotAllowed: "Method not allowed.",
  InternalServerError: "The server encountered an internal error or misconfiguration.",
  ServiceUnavailable: "The service is temporarily unavailable.",
  InsufficientStorage: "The server has no room to store the upload right now; retry later.",
  NoSuchEnvironment: "The deploy environment does not exist.",
  NoSuchDeployment: "The deployment does not exist.",
  ClosureIncomplete: "The target's closure is not wholly in the cache and signed.",
};

export interface ServerErrorOptions {
  /** A failure of this backend: counted in larder_backend_errors_total and logged with `cause`. */
  backend?: "storage" | "database";
  /** The request ended because the client went away: nobody reads the answer, nothing failed here. */
  clientGone?: boolean;
  cause?: unknown;
  /** Extra fields of a 4xx body (ClosureRefusal's path lists); never used for 5xx. */
  details?: Readonly<Record<string, unknown>>;
}

export class ServerError extends Error {
  readonly kind: ErrorKind;
  readonly backend: ServerErrorOptions["backend"];
  readonly clientGone: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(kind: ErrorKind, message?: string, opts: ServerErrorOptions = {}) {
    super(message ?? DEFAULT_MESSAGES[kind], opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.backend = opts.backend;
    this.clientGone = opts.clientGone ?? false;
    this.details = opts.details;
  }
  get status(): number {
    return httpStatus(this.kind);
  }
}

/** A 400 whose message says what was wrong with the request. */
export function badRequest(message: string): ServerError {
  return new ServerError("RequestError", `General request error: ${message}`);
}

export function errorBody(kind: ErrorKind, message: string): { code: number; error: ErrorKind; message: string } {
  const code = httpStatus(kind);
  return { code, error: kind, message: code >= 500 ? DEFAULT_MESSAGES[kind] : message };
}
