/** Everything a request handler or background task needs, built once by the entry point. */
import type { Logger } from "pino";
import type { Config } from "./config/load.ts";
import type { Db } from "./db/connect.ts";
import type { Storage } from "./storage/types.ts";
import type { StoragePool } from "./storage/pool.ts";
import type { TokenKeys } from "./auth/tokens.ts";
import type { Revocations } from "./auth/revocations.ts";
import type { AccessTracker } from "./access-tracker.ts";
import type { CacheDirectory } from "./cache-directory.ts";
import type { NarInfoCache } from "./narinfo-cache.ts";
import type { Metrics } from "./metrics.ts";
import type { BucketLayout } from "./bucket/types.ts";

export interface AppContext {
  readonly config: Config;
  readonly db: Db;
  /** pool.scratch: temporary objects that are not NARs (multipart parts); NARs go through the pool. */
  readonly storage: Storage;
  /** Every storage backend; a NAR's or log's row names the one holding it. */
  readonly pool: StoragePool;
  readonly tokens: TokenKeys;
  readonly revocations: Revocations;
  readonly caches: CacheDirectory;
  /** Rendered narinfo answers; writers drop what they change (narinfo-cache.ts). */
  readonly narInfos: NarInfoCache;
  readonly accessTracker: AccessTracker;
  readonly metrics: Metrics;
  /** Public caches' layouts in the S3 bucket; absent when the server has no bucket for them. */
  readonly bucketLayout?: BucketLayout;
  readonly log: Logger;
  /** Where uploads are spooled between decompression and storage. */
  readonly spoolDir: string;
}
