import type { Writable } from "node:stream";

/**
 * Destroys a file write stream and waits until its descriptor is closed. A failed pipeline
 * rejects without waiting for that, and a stream whose open is still queued on the thread pool
 * would create its file after a removal that ran first: remove a temporary file only after this.
 */
export async function closed(stream: Writable): Promise<void> {
  if (stream.closed) return;
  const done = new Promise<void>((resolve) => stream.once("close", () => resolve()));
  stream.destroy();
  await done;
}
