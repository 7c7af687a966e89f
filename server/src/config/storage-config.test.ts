import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "./load.ts";

const base = `[database]\nurl = "sqlite:///tmp/x.db"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(32, 1).toString("base64")}"\n`;
const parse = (storage: string) => parseConfig(base + storage, {});

describe("storage configuration", () => {
  it("keeps today's single backend as it was, named default", () => {
    const c = parse(`[storage]\ntype = "local"\npath = "/srv/larder"\n`);
    expect(c.storage).toEqual({ type: "local", path: "/srv/larder" });
    expect(c.storageSetup.backends).toEqual([{ name: "default", storage: { type: "local", path: "/srv/larder" }, weight: 1, presignDownloads: false }]);
  });

  it("loads the example in docs/CONFIG.md", () => {
    const doc = readFileSync(new URL("../../../docs/CONFIG.md", import.meta.url), "utf8");
    const example = /## Several storage backends[\s\S]*?```toml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    const c = parse(example as string);
    expect(c.storageSetup.backends.map((b) => [b.name, b.storage.type, b.capacity])).toEqual([
      ["default", "local", 400e9],
      ["bulk", "s3", undefined],
    ]);
    expect(c.storageSetup.placement).toEqual({ strategy: "in-order", backends: ["default", "bulk"] });
    expect(c.storageSetup.caches.get("ci")).toEqual({ strategy: "split", backends: ["default", "bulk"] });
  });

  it.each([
    [`[storage]\n[[storage.backends]]\ntype = "local"\npath = "/a"\n`, /storage.backends\[0\]: name is required/],
    [`[storage]\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/b"\n`, /"a" is used twice/],
    [`[storage]\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\n[[storage.backends]]\nname = "b"\ntype = "local"\npath = "/a/"\n`, /"a" and "b" are the same place/],
    [`[storage]\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\n[storage.caches.x]\nbackends = ["nope"]\n`, /storage.caches.x.backends: no backend is named "nope"/],
    [`[storage]\nretire-after = "1m"\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\n`, /retire-after: must be at least 10 minutes/],
    [`[storage]\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\ncapacity = "lots"\n`, /storage.backends.0.capacity: cannot parse size "lots"/],
    [`[storage]\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\nbucket = "b"\n`, /unknown key "bucket" in \[storage.backends.0\]/],
    [`[storage]\nstrategy = "random"\n[[storage.backends]]\nname = "a"\ntype = "local"\npath = "/a"\n`, /storage.strategy/],
    [`[storage]\npath = "/a"\n`, /storage: set type = "local" or "s3", or list several backends/],
  ])("names what is wrong: %#", (storage, message) => {
    expect(() => parse(storage)).toThrow(message);
  });
});
