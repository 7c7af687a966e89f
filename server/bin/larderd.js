#!/usr/bin/env node
import { launch } from "./launch.js";

// libuv's thread pool runs every fsync, file open and rename of ingest next to the compression and
// hashing work; with its default of 4 threads, a few uploads waiting on the disk held up all the
// others (docs/PERFORMANCE.md, closure ingest). Concurrent fsyncs also share the file system's
// journal commits. Read by libuv when the pool first starts, so it must be set before any work.
process.env.UV_THREADPOOL_SIZE ??= "16";

await launch("larderd", import.meta.url, new URL("../dist/main.js", import.meta.url), new URL("../src/main.ts", import.meta.url));
