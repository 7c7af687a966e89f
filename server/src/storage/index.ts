import { createLocalStorage } from "./local.ts";
import { createS3Storage } from "./s3.ts";
import type { Storage, StorageConfig } from "./types.ts";

export * from "./types.ts";
export { createLocalStorage } from "./local.ts";
export { createS3Storage } from "./s3.ts";
export { openFileStream, storeFile } from "./file.ts";

export async function createStorage(config: StorageConfig): Promise<Storage> {
  switch (config.type) {
    case "local":
      return createLocalStorage({ path: config.path });
    case "s3": {
      const { type: _type, ...opts } = config;
      return createS3Storage(opts);
    }
    default: {
      const unknown: never = config;
      throw new Error(`unknown storage type ${JSON.stringify((unknown as { type?: unknown }).type)}: use "local" or "s3"`);
    }
  }
}
