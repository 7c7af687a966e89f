/**
 * The shell scripts the NixOS module and the EC2 host profile generate (nixos-modules/scripts.nix),
 * extracted with the real Nix client and stand-in store paths: ShellCheck (as nixpkgs'
 * writeShellApplication runs it at build time) on every one, the build-time config check run with
 * the real larderd for every credential, and larderd-admin run with the exact command lines
 * `just gc-once`, `just token` and `just cache-create` send, through a stand-in systemd-run that
 * does what the real one does with the options the wrapper passes (credentials, environment, exec).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createCacheCommand } from "../src/cache-create.ts";
import { GC_COMMAND, parseGcSummary } from "../src/lib/gc-summary.ts";
import { makeTokenCommand } from "../src/make-token.ts";
import { REPO, tempDir } from "./helpers.ts";

const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const tools = ["nix-instantiate", "shellcheck"].filter((t) => !have(t));
if (tools.length > 0 && process.env.CI === "true") throw new Error(`missing ${tools.join(", ")}: .ci/run installs them`);

const SCRIPTS = join(REPO, "nixos-modules", "scripts.nix");
const LARDERD = join(REPO, "server", "bin", "larderd.js");

interface Secret { name: string; path: string[]; token: boolean; dummy: string; live?: boolean }

function nixEval<T>(expr: string): T {
  const dir = tempDir();
  const out = execFileSync("nix-instantiate", ["--readonly-mode", "--eval", "--strict", "--json", "--expr", expr], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: dir, NIX_STATE_DIR: join(dir, "state"), NIX_LOG_DIR: join(dir, "log"), NIX_CONF_DIR: dir },
  });
  return JSON.parse(out) as T;
}

/** A Nix attribute set from JSON (strings, lists, sets). */
const nixValue = (v: unknown): string => `builtins.fromJSON ${JSON.stringify(JSON.stringify(v))}`;
const script = (name: string, args: Record<string, unknown>) => nixEval<string>(`(import ${SCRIPTS}).${name} (${nixValue(args)})`);

/** nixpkgs' layouts: writeShellScript(Bin) puts a shebang first; writeShellApplication adds strict mode and PATH. */
const asShellScript = (text: string) => `#!/nix/store/00000000000000000000000000000000-bash/bin/bash\n${text}`;
const asShellApplication = (text: string) =>
  `#!/nix/store/00000000000000000000000000000000-bash/bin/bash\nset -o errexit\nset -o nounset\nset -o pipefail\n\nexport PATH="/nix/store/00000000000000000000000000000000-awscli2/bin:$PATH"\n\n${text}`;

function shellcheck(text: string): { status: number | null; output: string } {
  const r = spawnSync("shellcheck", ["--shell=bash", "-"], { input: text, encoding: "utf8" });
  return { status: r.status, output: r.stdout + r.stderr };
}

function executable(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o755);
  return p;
}

/** larderd as the package installs it: Node 24 running the server. */
const larderdStandIn = (dir: string) => executable(dir, "larderd", `#!/bin/sh\nexec '${process.execPath}' '${LARDERD}' "$@"\n`);

/**
 * systemd-run as the wrapper uses it: --property=LoadCredential=NAME:PATH copies the file into a
 * fresh $CREDENTIALS_DIRECTORY, --setenv=K=V sets the variable, and the command after `--` runs
 * with a clean environment plus those. It records its arguments, and the command's environment.
 */
const systemdRunStandIn = (dir: string) =>
  executable(
    dir,
    "systemd-run",
    `#!/usr/bin/env bash
set -euo pipefail
printf '%s\\n' "$@" > '${dir}/systemd-run.args'
creds=$(mktemp -d '${dir}/credentials.XXXXXX')
vars=(PATH="$PATH" HOME="${dir}" CREDENTIALS_DIRECTORY="$creds")
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; break ;;
    --property=LoadCredential=*) spec=\${1#--property=LoadCredential=}; cp "\${spec#*:}" "$creds/\${spec%%:*}" ;;
    --setenv=*) vars+=("\${1#--setenv=}") ;;
  esac
  shift
done
printf '%s\\n' "$@" > '${dir}/command.args'
exec env -i "\${vars[@]}" sh -c 'env > "$0"; exec "$@"' '${dir}/command.env' "$@"
`,
  );

describe.skipIf(tools.length > 0)("NixOS module scripts (nixos-modules/scripts.nix, real nix-instantiate)", () => {
  const secrets = nixEval<Secret[]>(`(import ${join(REPO, "nixos-modules", "defaults.nix")} { }).secrets`);
  const stand = {
    larderd: "/nix/store/00000000000000000000000000000000-larder/bin/larderd",
    configFile: "/nix/store/00000000000000000000000000000000-larder-server-checked.toml",
  };

  it("every module and host-profile script is in scripts.nix (so the checks below see them all)", () => {
    for (const file of ["larder.nix", "aws-host.nix", "package.nix"]) {
      const text = readFileSync(join(REPO, "nixos-modules", file), "utf8");
      // systemd's script/preStart/… options are shell scripts the module would generate inline.
      expect(text, file).not.toMatch(/^\s*(script|preStart|postStart|reload|preStop|postStop)\s*=/m);
      // Every call of a nixpkgs script writer or build-script runner (not the function argument lists).
      const writers = [...text.matchAll(/\b(writeShellScript|writeShellScriptBin|writeShellApplication|writeScript|writeScriptBin|writeText|runCommand\w*)\s+["{(]/g)];
      expect(writers.length, file).toBeGreaterThan(0);
      for (const m of writers) {
        const call = text.slice(m.index, m.index + 300);
        expect(call, `${file}: ${call.slice(0, 120)}`).toMatch(/\bscripts\.\w+|\(import \.\/scripts\.nix\)\.\w+/);
      }
    }
  });

  describe("ShellCheck, as writeShellApplication runs it at build time", () => {
    const cases: [string, string][] = [
      ["larderd-admin", asShellScript(script("adminWrapper", { systemdRun: "/nix/store/00000000000000000000000000000000-systemd/bin/systemd-run", ...stand, stateDir: "/var/lib/larder", properties: ["DynamicUser=yes", "LoadCredential=token-hs256-secret-base64:/run/keys/t", "ReadWritePaths=/srv/larder"], environment: { NODE_ENV: "production", AWS_REGION: "eu-west-1" } }))],
      ["larderd-admin (package)", asShellScript(nixEval<string>(`(import ${SCRIPTS}).packageAdmin`))],
      ["larder-server-checked.toml (build step)", script("configCheck", { ...stand, credentials: secrets.map((s) => ({ name: s.name, dummy: s.dummy })), needsToken: true, needsDatabaseUrl: true })],
      ["larder-server-checked.toml (no credentials)", script("configCheck", { ...stand, credentials: [], needsToken: false, needsDatabaseUrl: false })],
      ["larder-aws-secrets", asShellApplication(script("awsSecrets", { region: "eu-west-1", tokenSecretArn: "arn:aws:secretsmanager:eu-west-1:1:secret:t", databaseSecretArn: "arn:aws:secretsmanager:eu-west-1:1:secret:rds!db-1", host: "db.example", port: "5432", name: "larder", sslParameters: "sslmode=verify-full&sslrootcert=/var/lib/larder-aws/rds-ca-bundle.pem", caFetch: { url: "https://truststore.example/global-bundle.pem", file: "/var/lib/larder-aws/rds-ca-bundle.pem" }, dir: "/run/larder-aws", tokenFile: "token", databaseUrlFile: "database-url", databaseGroup: "larder" }))],
      ["larder-aws-secrets (CA bundle packaged)", asShellApplication(script("awsSecrets", { region: "eu-west-1", tokenSecretArn: "t", databaseSecretArn: "d", host: "db", port: "5432", name: "larder", sslParameters: "sslmode=no-verify", caFetch: null, dir: "/run/larder-aws", tokenFile: "token", databaseUrlFile: "database-url", databaseGroup: "larder" }))],
      ["larder-aws-disk-metric", asShellApplication(script("awsDiskMetric", { region: "eu-west-1", namespace: "larder", dimensions: "Deployment=prod,Mode=monolithic" }))],
    ];
    it.each(cases)("%s is clean", (_name, text) => {
      const r = shellcheck(text);
      expect(r.output).toBe("");
      expect(r.status).toBe(0);
    });
    it("reports what it should (the check can fail)", () => {
      expect(shellcheck(`#!/bin/bash\necho "a\\\\nb"\n`).output).toMatch(/SC2028/);
    });
  });

  it("the build-time config check accepts every credential the module offers, read from $CREDENTIALS_DIRECTORY", () => {
    const dir = tempDir();
    const larderd = larderdStandIn(dir);
    for (const secret of secrets) {
      const s3 = secret.path[0] === "storage";
      const toml = [
        'listen = "127.0.0.1:8080"',
        secret.path[0] === "database" ? "" : `[database]\nurl = "sqlite://${dir}/server.db"`,
        s3 ? `[storage]\ntype = "s3"\nregion = "eu-west-1"\nbucket = "b"` : `[storage]\ntype = "local"\npath = "${dir}/nars"`,
        s3 ? `[storage.credentials]\n${secrets.filter((o) => o.path[0] === "storage").map((o) => `${o.path.at(-1)} = "${o.name}"`).join("\n")}` : `[${secret.path.slice(0, -1).join(".")}]\n"${secret.path.at(-1)}" = "${secret.name}"`,
        secret.path[0] === "database" && secret.name === "database-password" ? `url = "postgresql://larder@localhost/larder"` : "",
      ].join("\n");
      const configFile = join(dir, `${secret.name}.toml`);
      writeFileSync(configFile, toml);
      const used = secrets.filter((o) => o === secret || (s3 && o.path[0] === "storage"));
      const text = script("configCheck", { larderd, configFile, credentials: used.map((o) => ({ name: o.name, dummy: o.dummy })), needsToken: !secret.token, needsDatabaseUrl: false });
      const out = join(dir, `${secret.name}.out`);
      const tmp = join(dir, `tmp-${secret.name}`);
      mkdirSync(tmp);
      const r = spawnSync("bash", ["-c", text], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH, TMPDIR: tmp, out } });
      expect(r.stderr, secret.name).toBe("");
      expect(r.stdout, secret.name).toContain("configuration is valid");
      expect(readFileSync(out, "utf8")).toBe(toml);
    }
  }, 180_000);

  it("a live credential (read in place on the host) is checked under its credential name, and installed with its host path", () => {
    const dir = tempDir();
    const larderd = larderdStandIn(dir);
    const live = secrets.find((s) => s.name === "database-url");
    expect(live).toMatchObject({ live: true });
    const body = (urlFile: string) => ['listen = "127.0.0.1:8080"', `[database]\n"url-file" = "${urlFile}"`, `[storage]\ntype = "local"\npath = "${dir}/nars"`].join("\n");
    const configFile = join(dir, "host.toml");
    const checkFile = join(dir, "check.toml");
    writeFileSync(configFile, body("/run/larder-aws/database-url"));
    writeFileSync(checkFile, body("database-url"));
    const check = (args: Record<string, unknown>, name: string) => {
      const tmp = join(dir, `tmp-${name}`);
      mkdirSync(tmp);
      const out = join(dir, `${name}.out`);
      const r = spawnSync("bash", ["-c", script("configCheck", { larderd, configFile, credentials: [{ name: "database-url", dummy: live?.dummy }], needsToken: true, needsDatabaseUrl: false, ...args })], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH, TMPDIR: tmp, out } });
      return { ...r, out };
    };
    const ok = check({ checkFile }, "live");
    expect(ok.stderr).toBe("");
    expect(readFileSync(ok.out, "utf8")).toBe(body("/run/larder-aws/database-url"));
    // Checking the host's file itself cannot work at build time: the path exists only on the host.
    const direct = check({}, "direct");
    expect(direct.status).not.toBe(0);
    expect(direct.stderr).toContain("/run/larder-aws/database-url: no such file");
   }, 60_000);

  describe("larderd-admin with the exact command lines the ops scripts send", () => {
    function setUp() {
      const dir = tempDir();
      const secretValue = Buffer.alloc(48, 9).toString("base64");
      const keyFile = join(dir, "token-key");
      writeFileSync(keyFile, `${secretValue}\n`, { mode: 0o600 });
      const configFile = join(dir, "server.toml");
      writeFileSync(
        configFile,
        [
          'listen = "127.0.0.1:8080"',
          `[database]\nurl = "sqlite://${dir}/server.db"`,
          `[storage]\ntype = "local"\npath = "${dir}/nars"`,
          `[jwt.signing]\ntoken-hs256-secret-base64-file = "token-hs256-secret-base64"`,
        ].join("\n"),
      );
      const wrapper = executable(
        dir,
        "larderd-admin",
        asShellScript(
          script("adminWrapper", {
            systemdRun: systemdRunStandIn(dir),
            larderd: larderdStandIn(dir),
            configFile,
            stateDir: dir,
            properties: ["DynamicUser=yes", "User=larder", `LoadCredential=token-hs256-secret-base64:${keyFile}`],
            environment: { NODE_ENV: "production" },
          }),
        ).replace(/^#!\S+/, "#!/usr/bin/env bash"),
      );
      const run = (argv: readonly string[]) => {
        const [program, ...args] = argv;
        expect(program).toBe("larderd-admin");
        return spawnSync(wrapper, args, { encoding: "utf8", env: { PATH: process.env.PATH } });
      };
      const commandArgs = () => readFileSync(join(dir, "command.args"), "utf8").trimEnd().split("\n");
      const commandEnv = () => readFileSync(join(dir, "command.env"), "utf8");
      return { dir, configFile, secretValue, run, commandArgs, commandEnv };
    }

    it("just gc-once: `larderd-admin --mode garbage-collector-once` runs one GC and ends with the summary gc-once parses", () => {
      const t = setUp();
      const r = t.run(GC_COMMAND);
      expect(r.status, r.stderr).toBe(0);
      const summary = parseGcSummary((r.stdout.trimEnd().split("\n").at(-1) ?? "").trim());
      expect(summary.objects).toBe(0);
      expect(t.commandArgs().slice(1)).toEqual(["--config", t.configFile, "--mode", "garbage-collector-once"]);
    }, 60_000);

    it("just cache-create and just token: subcommands get --config after their name; the key comes from the credential, not the environment", () => {
      const t = setUp();
      const created = t.run(createCacheCommand({ name: "main", public: false, upstreamKeyNames: [] }));
      expect(created.status, created.stderr).toBe(0);
      expect(created.stdout.trimEnd().split("\n").at(-1)).toMatch(/^main:[A-Za-z0-9+/]{43}=$/);
      expect(t.commandArgs().slice(1, 4)).toEqual(["create-cache", "--config", t.configFile]);

      const token = t.run(makeTokenCommand({ sub: "ci", validity: "1y", patterns: { pull: ["*"], push: ["main"] } }));
      expect(token.status, token.stderr).toBe(0);
      const jwt = token.stdout.trimEnd().split("\n").at(-1) ?? "";
      expect(jwt.split(".")).toHaveLength(3);
      // Signed with the credential's key: the HS256 signature checks out with it.
      const [h, p, sig] = jwt.split(".") as [string, string, string];
      expect(createHmac("sha256", Buffer.from(t.secretValue, "base64")).update(`${h}.${p}`).digest("base64url")).toBe(sig);
      expect(t.commandArgs().slice(1)).toEqual(["make-token", "--config", t.configFile, "--sub", "ci", "--validity", "1y", "--pull", "*", "--push", "main"]);
      expect(t.commandEnv()).not.toContain(t.secretValue);
      expect(t.commandEnv()).toMatch(/^CREDENTIALS_DIRECTORY=/m);
    }, 60_000);

    it("the package's own larderd-admin (outside NixOS) takes the same command lines, against $LARDER_CONFIG", () => {
      const t = setUp();
      const bin = join(t.dir, "pkg", "bin");
      mkdirSync(bin, { recursive: true });
      executable(bin, "larderd", readFileSync(join(t.dir, "larderd"), "utf8"));
      const admin = executable(bin, "larderd-admin", asShellScript(nixEval<string>(`(import ${SCRIPTS}).packageAdmin`)).replace(/^#!\S+/, "#!/usr/bin/env bash"));
      const credentials = join(t.dir, "pkg", "credentials");
      mkdirSync(credentials);
      writeFileSync(join(credentials, "token-hs256-secret-base64"), t.secretValue);
      const [, ...args] = GC_COMMAND;
      const r = spawnSync(admin, args, { encoding: "utf8", env: { PATH: process.env.PATH, LARDER_CONFIG: t.configFile, CREDENTIALS_DIRECTORY: credentials } });
      expect(r.status, r.stderr).toBe(0);
      expect(parseGcSummary((r.stdout.trimEnd().split("\n").at(-1) ?? "").trim()).nars).toBe(0);
      const [, ...tokenArgs] = makeTokenCommand({ sub: "ci", validity: "1y", patterns: { pull: ["main"] } });
      const token = spawnSync(admin, tokenArgs, { encoding: "utf8", env: { PATH: process.env.PATH, LARDER_CONFIG: t.configFile, CREDENTIALS_DIRECTORY: credentials } });
      expect(token.status, token.stderr).toBe(0);
      expect(token.stdout.trimEnd().split("\n").at(-1)?.split(".")).toHaveLength(3);
    }, 60_000);

    it("refuses to run without arguments, with a usage line", () => {
      const t = setUp();
      const r = t.run(["larderd-admin"]);
      expect(r.status).toBe(64);
      expect(r.stderr).toMatch(/usage: larderd-admin/);
    });
  });

  // The one check allowed to skip under CI=true: it needs a nixpkgs tree (NIXPKGS=path or <nixpkgs>).
  const nixpkgs = process.env.NIXPKGS ?? spawnSync("nix-instantiate", ["--find-file", "nixpkgs"], { encoding: "utf8" }).stdout?.trim();
  it.skipIf(!nixpkgs)("evaluates with the real NixOS module system: nixos-modules/eval-check.sh (needs a nixpkgs tree: NIXPKGS=path or <nixpkgs>)", () => {
    const r = spawnSync("bash", [join(REPO, "nixos-modules", "eval-check.sh")], { encoding: "utf8", env: { ...process.env, NIXPKGS: nixpkgs } });
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 900_000);
});
