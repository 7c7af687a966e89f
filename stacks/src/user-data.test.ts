import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderNixosConfig } from "./user-data.ts";
import type { HostNixosConfig } from "./user-data.ts";
import { secretProblems } from "./policy.ts";
import { requireTool } from "../../server/test/support/requirements.ts";

const config: HostNixosConfig = {
  mode: "monolithic",
  deployment: "prod",
  larderSource: { url: "https://example.com/larder/archive/abc.tar.gz", sha256: "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
  binaryCache: undefined,
  region: "eu-west-1",
  bucket: "${aws_s3_bucket.cache.bucket}",
  databaseHost: "${aws_db_instance.db.address}",
  databasePort: 5432,
  databaseName: "larder",
  databaseTls: "verify-full",
  databaseSecretArn: "${aws_db_instance.db.master_user_secret[0].secret_arn}",
  tokenSecretArn: "${aws_secretsmanager_secret.token.arn}",
  domain: "cache.example.net",
  tls: "acme",
  acmeEmail: "ops@example.net",
};

const CACHE = { url: "https://cache.example.com/main", publicKey: "main:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" };
const NETRC = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:larder/netrc-AbCdEf";

// The real Nix client parses and evaluates what a host would receive (no nixpkgs here: `lib` is a
// stub of the three functions the user data uses, and Terraform's ${…} references are replaced).
const haveNix = requireTool("nix-instantiate", "the rendered user data is parsed and evaluated by real Nix");
const LIB_STUB = `{
  hasInfix = infix: content: let n = builtins.stringLength infix; l = builtins.stringLength content;
    go = i: i + n <= l && (builtins.substring i n content == infix || go (i + 1)); in go 0;
  fileContents = file: let s = builtins.readFile file; n = builtins.stringLength s;
    in if n > 0 && builtins.substring (n - 1) 1 s == "\n" then builtins.substring 0 (n - 1) s else s;
  trivial.release = "26.05";
}`;

/** The host's files the user data reads, put in a scratch directory instead (absent when undefined). */
interface HostFiles {
  readonly nixConf?: string;
  readonly netrc?: string;
  readonly stateVersion?: string;
}

function nixEval(userData: string, expression: string, host: HostFiles = {}): unknown {
  const dir = mkdtempSync(path.join(tmpdir(), "larder-user-data-"));
  const file = path.join(dir, "configuration.nix");
  let text = userData.replaceAll(/\$\{[^}]*\}/g, "tf-ref");
  const hostFiles: [string, string, string | undefined][] = [
    ["/etc/nix/nix.conf", "nix.conf", host.nixConf],
    ["/etc/nix/netrc", "netrc", host.netrc],
    ["/var/lib/larder-aws/state-version", "state-version", host.stateVersion],
  ];
  for (const [real, name, content] of hostFiles) {
    const stand = path.join(dir, "host", name);
    if (content !== undefined) {
      mkdirSync(path.dirname(stand), { recursive: true });
      writeFileSync(stand, content);
    }
    for (const use of ["pathExists", "fileContents", "readFile"]) text = text.replaceAll(`${use} ${real}`, `${use} ${stand}`);
  }
  writeFileSync(file, text);
  const env = { PATH: process.env.PATH, NIX_CONF_DIR: dir, HOME: dir, NIX_STATE_DIR: path.join(dir, "state"), NIX_LOG_DIR: path.join(dir, "log") };
  const args = `{ config = { system.stateVersion = "26.05"; systemd.package = null; }; lib = ${LIB_STUB}; pkgs = { awscli2 = null; coreutils = null; }; modulesPath = "/modules"; }`;
  try {
    const out = execFileSync(
      "nix-instantiate",
      ["--readonly-mode", "--eval", "--strict", "--json", "--expr", `let m = (import ${file}) ${args}; in ${expression}`],
      { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    return JSON.parse(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("renderNixosConfig", () => {
  const text = renderNixosConfig(config);

  it("imports larder's aws-host profile from the pinned tarball", () => {
    expect(text).toContain('url = "https://example.com/larder/archive/abc.tar.gz";');
    expect(text).toContain('sha256 = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";');
    expect(text).toMatch(/imports = \[ \(\(builtins\.fetchTarball \{[^}]*\}\) \+ "\/nixos-modules\/aws-host\.nix"\) \];/);
    expect(text).toContain("imports = [ larder ];");
  });

  it("configures services.larder.aws with the mode, the bucket, the name, how TLS ends and the metrics' names", () => {
    expect(text).toMatch(/services\.larder\.aws = \{\n\s+deployment = "prod";\n\s+mode = "monolithic";\n\s+region = "eu-west-1";\n\s+bucket = "\$\{aws_s3_bucket\.cache\.bucket\}";/);
    expect(text).toContain('domain = "cache.example.net";');
    expect(text).toContain('tls = "acme";');
    expect(text).toContain('acmeEmail = "ops@example.net";');
    expect(text).toContain('metricsNamespace = "Larder";');
  });

  it("verifies the database's certificate unless told otherwise", () => {
    expect(text).toMatch(/masterUserSecretArn = [^\n]*\n\s+tls = "verify-full";/);
    expect(renderNixosConfig({ ...config, databaseTls: "no-verify" })).toMatch(/masterUserSecretArn = [^\n]*\n\s+tls = "no-verify";/);
  });

  it("passes the secrets' ARNs and the database's address, never a credential", () => {
    expect(text).toContain('masterUserSecretArn = "${aws_db_instance.db.master_user_secret[0].secret_arn}";');
    expect(text).toContain('tokenSecretArn = "${aws_secretsmanager_secret.token.arn}";');
    expect(text).toContain("port = 5432;");
    expect(text).not.toMatch(/password|token-hs256-secret-base64|database\.url|url = "postgres/);
    expect(secretProblems(text)).toEqual([]);
  });

  it("uses no Nix interpolation, so every ${ is a Terraform reference", () => {
    for (const variant of [text, renderNixosConfig({ ...config, binaryCache: CACHE, larderSource: { flake: "github:o/larder/0123456789abcdef0123456789abcdef01234567", netrcSecretArn: NETRC } })]) {
      const interpolations = variant.match(/\$\{[^}]*\}/g) ?? [];
      expect(interpolations.length).toBeGreaterThan(0);
      for (const found of interpolations) expect(found).toMatch(/^\$\{aws_[a-z0-9_]+\.[a-z]+\.[a-z_\[\]0-9.]+\}$/);
    }
  });

  it("names no NixOS release: stateVersion is the host's first-install release, recorded on the host", () => {
    expect(text).not.toMatch(/\d{2}\.(05|11)/);
    expect(text).toContain("system.stateVersion = if builtins.pathExists /var/lib/larder-aws/state-version then lib.fileContents /var/lib/larder-aws/state-version else lib.trivial.release;");
  });

  it("writes null for a host without its own certificate", () => {
    const plain = renderNixosConfig({ ...config, mode: "api-server", tls: "load-balancer", acmeEmail: undefined });
    expect(plain).toContain("acmeEmail = null;");
    expect(plain).toContain('tls = "load-balancer";');
    expect(plain).toContain('mode = "api-server";');
  });

  it("escapes quotes and backslashes in values", () => {
    expect(renderNixosConfig({ ...config, region: 'a"b\\c' })).toContain('region = "a\\"b\\\\c";');
  });

  describe("with a binary cache, a private source or a flake: two passes", () => {
    const cached = renderNixosConfig({ ...config, binaryCache: CACHE });

    it("sets the substituter and its key, and imports larder only once nix.conf names the cache", () => {
      expect(cached).toContain('nix.settings.extra-substituters = [ "https://cache.example.com/main" ];');
      expect(cached).toContain('nix.settings.extra-trusted-public-keys = [ "main:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" ];');
      expect(cached).toContain('ready = lib.hasInfix "https://cache.example.com/main" nixConf;');
      expect(cached).toContain("imports = [ (if ready then larder else firstPass) ];");
    });

    it("reruns amazon-init after the first pass, once that pass has finished", () => {
      expect(cached).toMatch(/firstPass = \{ config, \.\.\. \}: \{\n\s+imports = \[ \(modulesPath \+ "\/virtualisation\/amazon-image\.nix"\) \];/);
      expect(cached).toContain('while [ "$(systemctl show -P ActiveState amazon-init.service)" = activating ]; do sleep 2; done');
      expect(cached).toContain("systemctl restart --no-block amazon-init.service");
    });

    it("fetches a private source's netrc from Secrets Manager before amazon-init, and waits for it", () => {
      const privateSource = renderNixosConfig({ ...config, larderSource: { ...config.larderSource, netrcSecretArn: NETRC } });
      expect(privateSource).toContain(`--secret-id "${NETRC}"`);
      expect(privateSource).toMatch(/systemd\.services\.larder-aws-netrc = \{[^]*before = \[ "amazon-init\.service" \];/);
      expect(privateSource).toContain("mv -f /etc/nix/netrc.new /etc/nix/netrc");
      expect(privateSource).toContain("ready = builtins.pathExists /etc/nix/netrc;");
    });

    it("imports a flake's aws-host module once flakes are enabled", () => {
      const flake = renderNixosConfig({ ...config, larderSource: { flake: "github:o/larder/0123456789abcdef0123456789abcdef01234567" } });
      expect(flake).toContain('imports = [ ((builtins.getFlake "github:o/larder/0123456789abcdef0123456789abcdef01234567").nixosModules.aws-host) ];');
      expect(flake).toContain('nix.settings.experimental-features = [ "nix-command" "flakes" ];');
      expect(flake).toContain('ready = lib.hasInfix "flakes" nixConf;');
    });
  });

  describe.skipIf(!haveNix)("evaluated by real Nix", () => {
    it("single pass: imports larder, takes stateVersion from the release and records it at activation", () => {
      expect(nixEval(text, "builtins.length m.imports")).toBe(1);
      expect(nixEval(text, "(builtins.head m.imports).services.larder.aws.database.tls")).toBe("verify-full");
      expect(nixEval(text, "m.system.stateVersion")).toBe("26.05");
      expect(nixEval(text, "m.system.activationScripts.larder-aws-state-version")).toBe(
        "if [ ! -s /var/lib/larder-aws/state-version ]; then mkdir -p /var/lib/larder-aws && echo 26.05 > /var/lib/larder-aws/state-version; fi",
      );
    });

    it("keeps the stateVersion recorded at the first install when the image's release moves on", () => {
      expect(nixEval(text, "m.system.stateVersion", { stateVersion: "25.11\n" })).toBe("25.11");
    });

    it("two passes: once nix.conf names the cache and the netrc is there, the second pass imports larder", () => {
      const cached = renderNixosConfig({ ...config, binaryCache: CACHE, larderSource: { ...config.larderSource, netrcSecretArn: NETRC } });
      const nixConf = "substituters = https://cache.nixos.org/\nextra-substituters = https://cache.example.com/main\n";
      const secondPass = "(builtins.head m.imports).services.larder.aws.mode";
      expect(nixEval(cached, secondPass, { nixConf, netrc: "machine x\n" })).toBe("monolithic");
      // Either missing keeps the first pass.
      expect(nixEval(cached, "builtins.isFunction (builtins.head m.imports)", { nixConf })).toBe(true);
      expect(nixEval(cached, "builtins.isFunction (builtins.head m.imports)", { netrc: "machine x\n", nixConf: "substituters = https://cache.nixos.org/\n" })).toBe(true);
    });

    it("two passes: before nix.conf names the cache, the first pass, without larder", () => {
      const cached = renderNixosConfig({ ...config, binaryCache: CACHE, larderSource: { ...config.larderSource, netrcSecretArn: NETRC } });
      expect(nixEval(cached, "builtins.isFunction (builtins.head m.imports)")).toBe(true);
      expect(nixEval(cached, `((builtins.head m.imports) { config = { systemd.package = null; }; }).systemd.services.larder-aws-second-pass.after`)).toEqual(["larder-aws-netrc.service"]);
      expect(nixEval(cached, "m.nix.settings.extra-substituters")).toEqual(["https://cache.example.com/main"]);
      expect(nixEval(cached, "m.systemd.services.larder-aws-netrc.before")).toEqual(["amazon-init.service"]);
    });
  });
});
