// Runs the real Nix 2.8 client (isolated config, chroot store, file:// binary cache) to check that
// narinfos signed here are accepted by `nix store verify`, and that keys made here work in Nix.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireTool } from "../../test/support/requirements.ts";
import { makeTempDir, type TempDir } from "../../test/support/tmp.ts";
import { fingerprint } from "./fingerprint.ts";
import { NarParser } from "./nar.ts";
import { parseNarInfo, renderNarInfo } from "./narinfo.ts";
import { formatPublicKey, formatSecretKey, generateSecretKey, publicKeyOf, signFingerprint, type SecretKey } from "./signing.ts";
import { ISOLATED_NIX_CONF } from "../../test/support/nix-conf.ts";

const run = promisify(execFile);
const haveNix = requireTool("nix", "signatures must be checked by the real Nix client");

const NIX_CONF = ISOLATED_NIX_CONF;

describe.skipIf(!haveNix)("real Nix accepts what we sign", () => {
  let tmp: TempDir;
  let env: NodeJS.ProcessEnv;
  let store: string;
  let cache: string;
  let top: string;

  const nix = (args: string[]) => run("nix", args, { env, maxBuffer: 16 * 1024 * 1024 });
  async function verify(pubs: string[]): Promise<number> {
    try {
      await nix(["store", "verify", "--store", `file://${cache}`, "-r", "--sigs-needed", "1", "--trusted-public-keys", pubs.join(" "), top]);
      return 0;
    } catch (e) {
      return (e as { code?: number }).code ?? -1;
    }
  }
  function signCache(sk: SecretKey): void {
    for (const f of readdirSync(cache).filter((n) => n.endsWith(".narinfo"))) {
      const ni = parseNarInfo(readFileSync(path.join(cache, f), "utf8"));
      ni.sigs = [signFingerprint(sk, fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references))];
      writeFileSync(path.join(cache, f), renderNarInfo(ni));
    }
  }

  beforeAll(async () => {
    tmp = await makeTempDir("nix-verify");
    const conf = path.join(tmp.path, "conf");
    await run("mkdir", ["-p", conf, path.join(tmp.path, "home")]);
    writeFileSync(path.join(conf, "nix.conf"), NIX_CONF);
    env = {
      PATH: process.env.PATH,
      NIX_CONF_DIR: conf,
      HOME: path.join(tmp.path, "home"),
      XDG_CACHE_HOME: path.join(tmp.path, "cache-home"),
      NIX_STATE_DIR: path.join(tmp.path, "state"),
      NIX_LOG_DIR: path.join(tmp.path, "log"),
    };
    store = path.join(tmp.path, "store");
    cache = path.join(tmp.path, "bc");
    // Input-addressed paths: content-addressed ones would pass verification without any signature.
    const nonce = `${process.pid}-${Date.now()}`;
    const expr = path.join(tmp.path, "closure.nix");
    writeFileSync(
      expr,
      `let mk = name: script: builtins.derivation { inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ]; };
           dep = mk "nv-dep-${nonce}" "echo ${nonce} > $out";
           mid = mk "nv-mid-${nonce}" "/bin/mkdir $out; echo \${dep} > $out/dep";
       in mk "nv-top-${nonce}" "/bin/mkdir $out; /bin/ln -s \${mid} $out/mid; echo \${dep} > $out/dep"`,
    );
    top = (await run("nix-build", ["--store", store, expr, "--no-out-link"], { env })).stdout.trim();
    await nix(["--store", store, "copy", "--to", `file://${cache}?compression=none`, top]);
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it("starts unsigned and untrusted", async () => {
    const narinfos = readdirSync(cache).filter((n) => n.endsWith(".narinfo"));
    expect(narinfos).toHaveLength(3);
    for (const f of narinfos) expect(parseNarInfo(readFileSync(path.join(cache, f), "utf8")).sigs).toEqual([]);
    const someone = formatPublicKey(publicKeyOf(generateSecretKey("someone")));
    expect(await verify([someone])).toBe(2);
  });

  it("verifies the closure once we sign it, and only with our key", async () => {
    const sk = generateSecretKey("larder-verify-1");
    signCache(sk);
    expect(await verify([formatPublicKey(publicKeyOf(sk))])).toBe(0);
    expect(await verify([formatPublicKey(publicKeyOf(generateSecretKey("larder-verify-1")))])).toBe(2);
    expect(await verify([formatPublicKey(publicKeyOf(generateSecretKey("other")))])).toBe(2);
  });

  it("accepts a NAR Nix dumped fresh", () => {
    for (const f of readdirSync(path.join(cache, "nar"))) {
      const p = new NarParser();
      p.push(readFileSync(path.join(cache, "nar", f)));
      expect(p.end().entries).toBeGreaterThan(0);
    }
  });

  it("uses a key we generated exactly as we do", async () => {
    const sk = generateSecretKey("larder-verify-2");
    const keyFile = path.join(tmp.path, "ours.sec");
    writeFileSync(keyFile, formatSecretKey(sk));
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
      const child = execFile("nix", ["key", "convert-secret-to-public"], { env }, (err, stdout) =>
        err ? reject(err) : resolve({ stdout }),
      );
      child.stdin!.end(formatSecretKey(sk));
    });
    expect(stdout.trim()).toBe(formatPublicKey(publicKeyOf(sk)));

    // Nix signs the file:// cache with our key; its signatures must equal ours byte for byte.
    await nix(["store", "sign", "--store", `file://${cache}`, "--key-file", keyFile, "-r", top]);
    for (const f of readdirSync(cache).filter((n) => n.endsWith(".narinfo"))) {
      const ni = parseNarInfo(readFileSync(path.join(cache, f), "utf8"));
      const ours = signFingerprint(sk, fingerprint(ni.storePath, ni.narHash, ni.narSize, ni.references));
      expect(ni.sigs).toContain(ours);
    }
  });
});
