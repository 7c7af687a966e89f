import { createWriteStream, existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closed } from "./closed.ts";

describe("closed", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "larder-closed-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("resolves only after a stream destroyed before its open has opened and closed the file", async () => {
    const path = join(dir, "early");
    const stream = createWriteStream(path);
    const pending = closed(stream);
    // The open is still queued: removing the file now would run before it is created.
    expect(existsSync(path)).toBe(false);
    await pending;
    expect(stream.closed).toBe(true);
    expect(existsSync(path)).toBe(true);
  });

  it("returns at once for a stream already closed, and after an open that failed", async () => {
    const done = createWriteStream(join(dir, "done"));
    await new Promise((r) => done.end(r));
    await new Promise((r) => setImmediate(r));
    await closed(done);
    const failing = createWriteStream(join(dir, "missing", "file"));
    failing.on("error", () => {});
    await closed(failing);
    expect(failing.closed).toBe(true);
  });
});
