import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./load.ts";
import { configKeys, renderConfigReference } from "./reference.ts";

const SECRET = Buffer.alloc(48, 7).toString("base64");
const minimal = (extra = "") => `${extra}
[database]
url = "sqlite:///tmp/x.db"
[storage]
type = "local"
path = "/tmp/storage"
[jwt.signing]
token-hs256-secret-base64 = "${SECRET}"
`;

describe("server.toml", () => {
  it("fills every default from a minimal file", () => {
    const c = parseConfig(minimal());
    expect(c.listen).toEqual({ host: "::", port: 8080 });
    expect(c.compression).toEqual({ type: "zstd", level: 3 });
    expect(c.gc).toEqual({ intervalSeconds: 43200, defaultRetentionSeconds: 0, graceSeconds: 21600 });
    expect(c.spoolDir).toBe("/tmp/spool");
    expect(c.maxNarInfoSize).toBe(1048576);
    expect(c.narInfoCacheTtlMs).toBe(1000);
    expect(parseConfig(minimal(`narinfo-cache-ttl = "0s"`)).narInfoCacheTtlMs).toBe(0);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("loads attic's own server.toml layout, chunking section included", () => {
    const attic = `listen = "[::]:8080"
allowed-hosts = []
api-endpoint = "https://cache.example.com/"
[database]
url = "postgresql:///attic?host=/run/postgresql"
[storage]
type = "s3"
region = "us-east-1"
bucket = "attic"
endpoint = "https://s3.example.com"
[storage.credentials]
access_key_id = "AK"
secret_access_key = "SK"
[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144
[compression]
type = "zstd"
level = 8
[garbage-collection]
interval = "12 hours"
default-retention-period = "3 months"
[jwt]
[jwt.signing]
token-hs256-secret-base64 = "${SECRET}"
`;
    const c = parseConfig(attic);
    expect(c.storage).toMatchObject({ type: "s3", bucket: "attic", credentials: { accessKeyId: "AK", secretAccessKey: "SK" } });
    expect(c.gc.defaultRetentionSeconds).toBe(7_890_048);
    expect(c.compression.level).toBe(8);
    expect(c.apiEndpoint).toBe("https://cache.example.com/");
  });

  it.each([
    ["an unknown top-level key", minimal('colour = "blue"'), /unknown key "colour"/],
    ["an unknown nested key", minimal().replace('type = "local"', 'type = "local"\nsize = 3'), /unknown key "size" in \[storage\]/],
    ["a bad storage type", minimal().replace('type = "local"', 'type = "ftp"'), /storage/],
    ["an api-endpoint without trailing slash", minimal('api-endpoint = "https://x.example"'), /api-endpoint: must end with '\/'/],
    ["a bad duration", minimal('[garbage-collection]\ninterval = "soon"'), /garbage-collection\.interval: cannot parse duration "soon"/],
    ["a bad listen address", minimal('listen = "8080"'), /listen: "8080" is not HOST:PORT/],
    ["a database url of another kind", minimal().replace("sqlite:///tmp/x.db", "mysql://x"), /must start with sqlite:\/\/ or postgres:\/\//],
    ["an out-of-range level", minimal('[compression]\nlevel = 40'), /compression.level: 40 is outside 1..19/],
    ["a top-level token secret (old attic layout)", `token-hs256-secret-base64 = "${SECRET}"\n${minimal()}`, /belongs under \[jwt.signing\]/],
    ["invalid TOML", "listen = ", /not valid TOML/],
  ])("rejects %s with a message naming it", (_what, text, message) => {
    expect(() => parseConfig(text)).toThrow(ConfigError);
    expect(() => parseConfig(text)).toThrow(message);
  });

  it("requires a signing key and takes secrets from the environment instead of the file", () => {
    const noKey = minimal().replace(/\[jwt.signing\][^]*$/, "");
    expect(() => parseConfig(noKey)).toThrow(/no token signing key/);
    const c = parseConfig(noKey.replace(/\[database\]\nurl = .*\n/, ""), {
      LARDER_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET,
      LARDER_SERVER_DATABASE_URL: "postgres://u:p@db/larder",
    });
    expect(c.jwt.key.alg).toBe("HS256");
    expect(c.databaseUrl).toBe("postgres://u:p@db/larder");
    expect(() => parseConfig(minimal(), { LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64: "eA==" })).toThrow(/exactly one/);
    expect(() => parseConfig(noKey, { LARDER_SERVER_TOKEN_HS256_SECRET_BASE64: "c2hvcnQ=" })).toThrow(/at least 32 bytes/);
  });

  it("documents every key in docs/CONFIG.md, generated from the schema", () => {
    const committed = readFileSync(new URL("../../../docs/CONFIG.md", import.meta.url), "utf8");
    expect(committed, "run `npm run docs:config -w server`").toBe(renderConfigReference());
    for (const k of configKeys()) expect(k.description, k.path).not.toBe("");
  });
});
