import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, ENV_FILE_KEYS, ENV_KEYS, parseConfig } from "./load.ts";
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
    expect(c.gc).toEqual({ intervalSeconds: 43200, defaultRetentionSeconds: 0, graceSeconds: 21600, accessFlushSeconds: 10 });
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
    ["invalid TOML, saying where", `listen = "[::]:8080"\n[storage]\ntype = "local\n`, /^server\.toml is not valid TOML: line 3, column \d+: /],
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
    expect(() => parseConfig(noKey, { LARDER_SERVER_TOKEN_HS256_SECRET_BASE64: "c2hvcnQ=" })).toThrow(/at least 32 bytes/);
  });

  it("follows attic's precedence: server.toml before the environment, and pubkey, RS256, HS256 among signing keys", () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const priv = Buffer.from(privateKey.export({ type: "pkcs1", format: "pem" }) as string).toString("base64");
    const pub = Buffer.from(publicKey.export({ type: "pkcs1", format: "pem" }) as string).toString("base64");
    // database.url in the file wins over both variables (attic's NixOS module always writes it).
    const env = { ATTIC_SERVER_DATABASE_URL: "postgres://u:p@elsewhere/attic", LARDER_SERVER_DATABASE_URL: "postgres://u:p@elsewhere/larder" };
    expect(parseConfig(minimal(), env).databaseUrl).toBe("sqlite:///tmp/x.db");
    const noUrl = minimal().replace(/url = .*\n/, "");
    expect(parseConfig(noUrl, { ATTIC_SERVER_DATABASE_URL: "postgres://u:p@db/attic" }).databaseUrl).toBe("postgres://u:p@db/attic");
    // The same for the -file forms: a url-file in server.toml beats an environment URL.
    const urlDir = mkdtempSync(join(tmpdir(), "larder-prec-"));
    const urlFile = join(urlDir, "url");
    writeFileSync(urlFile, "postgres://u:p@fromfile/larder\n");
    try {
      expect(parseConfig(noUrl.replace("[database]", `[database]\nurl-file = "${urlFile}"`), env).databaseUrl).toBe("postgres://u:p@fromfile/larder");
    } finally {
      rmSync(urlDir, { recursive: true, force: true });
    }
    // A signing key in the file beats one in the environment.
    expect(parseConfig(minimal(), { ATTIC_SERVER_TOKEN_RS256_PUBKEY_BASE64: pub }).jwt.key.alg).toBe("HS256");
    // Several keys in the file: the public key, then the RS256 secret, then HS256; no refusal.
    const both = minimal().replace("[jwt.signing]", `[jwt.signing]\ntoken-rs256-secret-base64 = "${priv}"`);
    expect(parseConfig(both).jwt.key).toMatchObject({ alg: "RS256", privatePem: expect.stringContaining("PRIVATE KEY") });
    const all = both.replace("[jwt.signing]", `[jwt.signing]\ntoken-rs256-pubkey-base64 = "${pub}"`);
    expect(parseConfig(all).jwt.key).toEqual({ alg: "RS256", publicPem: expect.stringContaining("PUBLIC KEY") });
    // Only when the file sets none does the environment count, in the same order.
    const noKey = minimal().replace(/\[jwt.signing\][^]*$/, "");
    const envKeys = { ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64: SECRET, ATTIC_SERVER_TOKEN_RS256_SECRET_BASE64: priv };
    expect(parseConfig(noKey, envKeys).jwt.key.alg).toBe("RS256");
    expect(parseConfig(noKey, { ...envKeys, LARDER_SERVER_TOKEN_RS256_PUBKEY_BASE64: pub }).jwt.key).toEqual({ alg: "RS256", publicPem: expect.any(String) });
  });

  it("documents every key in docs/CONFIG.md, generated from the schema", () => {
    const committed = readFileSync(new URL("../../../docs/CONFIG.md", import.meta.url), "utf8");
    expect(committed, "run `npm run docs:config -w server`").toBe(renderConfigReference());
    for (const k of configKeys()) expect(k.description, k.path).not.toBe("");
  });
});

describe("secrets by file", () => {
  const dir = mkdtempSync(join(tmpdir(), "larder-secrets-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const noSecrets = (extra = "") => `${extra}
[storage]
type = "local"
path = "/tmp/storage"
`;
  const hsFile = file("hs256", `${SECRET}\n`);

  it("gives every secret key a -file sibling, documented", () => {
    const keys = new Map(configKeys().map((k) => [k.path, k.description]));
    const secrets = [
      ["database.url", "database.url-file"],
      ["jwt.signing.token-hs256-secret-base64", "jwt.signing.token-hs256-secret-base64-file"],
      ["jwt.signing.token-rs256-secret-base64", "jwt.signing.token-rs256-secret-base64-file"],
      ["jwt.signing.token-rs256-pubkey-base64", "jwt.signing.token-rs256-pubkey-base64-file"],
      ["storage.credentials.access_key_id", "storage.credentials.access_key_id_file"],
      ["storage.credentials.secret_access_key", "storage.credentials.secret_access_key_file"],
      ["storage.credentials.session_token", "storage.credentials.session_token_file"],
    ];
    for (const [key, sibling] of secrets) {
      expect(keys.has(key as string), key).toBe(true);
      expect(keys.get(sibling as string), sibling).toMatch(/File holding/);
    }
    expect(keys.get("database.password-file")).toMatch(/password/);
    for (const [which, names] of Object.entries(ENV_KEYS)) {
      expect(ENV_FILE_KEYS[which as keyof typeof ENV_FILE_KEYS]).toEqual(names.map((n) => `${n}_FILE`));
    }
  });

  it("reads every secret from its file, trailing newline dropped", () => {
    const text = `${noSecrets()}
[storage.credentials]
access_key_id_file = "${file("ak", "AKIAEXAMPLE\n")}"
secret_access_key_file = "${file("sk", "s3cr3t/with+chars")}"
session_token_file = "${file("st", "tok\r\n")}"
[database]
url-file = "${file("url", "postgres://larder:p%40ss@db.internal:5432/larder\n")}"
[jwt.signing]
token-hs256-secret-base64-file = "${hsFile}"
`.replace('type = "local"\npath = "/tmp/storage"', 'type = "s3"\nregion = "eu-west-1"\nbucket = "b"');
    const c = parseConfig(text);
    expect(c.storage).toMatchObject({ credentials: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "s3cr3t/with+chars", sessionToken: "tok" } });
    expect(c.database.url).toBe("postgres://larder:p%40ss@db.internal:5432/larder");
    expect(c.database.passwordSource).toEqual({ kind: "url-file", path: join(dir, "url") });
    expect(c.jwt.key).toEqual({ alg: "HS256", secret: Buffer.from(SECRET, "base64") });
  });

  it("merges database.password-file into the URL, percent-encoding any character", () => {
    const password = "a@b:c/d%e#f?g h";
    const c = parseConfig(noSecrets(`[database]\nurl = "postgresql://larder@db.internal/larder?sslmode=verify-full"\npassword-file = "${file("pw", `${password}\n`)}"\n[jwt.signing]\ntoken-hs256-secret-base64-file = "${hsFile}"`));
    const u = new URL(c.database.url);
    expect(u.hostname).toBe("db.internal");
    expect(decodeURIComponent(u.password)).toBe(password);
    expect(c.database.tls).toEqual({ mode: "verify-full" });
    expect(u.search).toBe("");
    expect(c.database.passwordSource).toEqual({ kind: "password-file", path: join(dir, "pw") });
  });

  it("takes _FILE environment variables, and relative paths from $CREDENTIALS_DIRECTORY", () => {
    const creds = join(dir, "credentials");
    mkdirSync(creds);
    writeFileSync(join(creds, "database-url"), "postgres://larder@db/larder");
    writeFileSync(join(creds, "database-password"), "rotated-1");
    const c = parseConfig(noSecrets(), {
      CREDENTIALS_DIRECTORY: creds,
      LARDER_SERVER_DATABASE_URL_FILE: "database-url",
      LARDER_SERVER_DATABASE_PASSWORD_FILE: "database-password",
      ATTIC_SERVER_TOKEN_HS256_SECRET_BASE64_FILE: hsFile,
    });
    expect(c.database.url).toBe("postgres://larder:rotated-1@db/larder");
    expect(c.database.passwordSource).toEqual({ kind: "password-file", path: join(creds, "database-password") });
    expect(c.jwt.key.alg).toBe("HS256");
  });

  it.each([
    ["a missing file, naming the key and the path", () => parseConfig(minimal().replace(/url = .*/, `url-file = "${join(dir, "nope")}"`)), /database.url-file: cannot read .*nope: no such file/],
    ["a missing file given by a variable", () => parseConfig(noSecrets(`[database]\nurl = "sqlite:///tmp/x.db"`), { LARDER_SERVER_TOKEN_HS256_SECRET_BASE64_FILE: join(dir, "gone") }), /environment variable LARDER_SERVER_TOKEN_HS256_SECRET_BASE64_FILE: cannot read .*gone: no such file/],
    ["a directory", () => parseConfig(noSecrets(`[database]\nurl = "sqlite:///tmp/x.db"\n[jwt.signing]\ntoken-hs256-secret-base64-file = "${dir}"`)), /jwt.signing.token-hs256-secret-base64-file: cannot read .*: is a directory/],
    ["an empty file", () => parseConfig(noSecrets(`[database]\nurl = "sqlite:///tmp/x.db"\n[jwt.signing]\ntoken-hs256-secret-base64-file = "${file("empty", "\n")}"`)), /token-hs256-secret-base64-file: cannot read .*empty: the file is empty/],
    ["a key and its -file sibling together", () => parseConfig(minimal().replace("[jwt.signing]", `[jwt.signing]\ntoken-hs256-secret-base64-file = "${hsFile}"`)), /set only one of jwt.signing.token-hs256-secret-base64 and jwt.signing.token-hs256-secret-base64-file/],
    ["a variable and its _FILE form together", () => parseConfig(minimal(), { LARDER_SERVER_DATABASE_URL: "postgres://db/x", LARDER_SERVER_DATABASE_URL_FILE: hsFile }), /set only one of the environment variables LARDER_SERVER_DATABASE_URL and LARDER_SERVER_DATABASE_URL_FILE/],
    ["a password file beside a URL that has a password", () => parseConfig(minimal().replace("sqlite:///tmp/x.db", "postgres://u:old@db/x").replace("[storage]", `password-file = "${file("pw2", "new")}"\n[storage]`)), /database.password-file: the database URL already has a password/],
    ["a password file for SQLite", () => parseConfig(minimal().replace("[storage]", `password-file = "${file("pw3", "new")}"\n[storage]`)), /database.password-file: only a postgres:\/\/ database takes a password/],
    ["an auth-failure file for SQLite", () => parseConfig(minimal().replace("[storage]", `auth-failure-file = "${join(dir, "sig")}"\n[storage]`)), /database.auth-failure-file: only a postgres:\/\/ database/],
    ["an auth-failure file for a password larderd never reads again", () => parseConfig(minimal().replace("sqlite:///tmp/x.db", "postgres://u:p@db/x").replace("[storage]", `auth-failure-file = "${join(dir, "sig")}"\n[storage]`)), /database.auth-failure-file: only with database.password-file or database.url-file/],
  ])("refuses %s", (_what, load, message) => {
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
  });
});
