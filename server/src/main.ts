/**
 * larderd's entry point: the only place that reads argv, the environment and files, installs
 * signal handlers and sets exit codes. Everything below receives a parsed, frozen Config.
 */
import { scrubString } from "./log.ts";
import { Command, Option } from "commander";
import { ConfigError, parseConfig, parseListen, type Config } from "./config/load.ts";
import { writeFirstRunConfig, xdgPaths } from "./config/first-run.ts";
import { loadConfig, readConfigText } from "./cli/load-config.ts";
import { createCacheCommand, makeToken, revokeTokenCommand } from "./cli/admin.ts";
import { PERMISSION_FLAGS } from "./auth/token-request.ts";
import { storageDrain, storageRebalance, storageRenameBackend, storageStatus } from "./cli/storage.ts";
import { parseDuration } from "./util/duration.ts";
import { runMode, MODES, type Mode, type ModeHooks } from "./modes.ts";
import { syncBucketLayout } from "./cli/bucket-layout.ts";
import { invocation } from "./util/invocation.ts";
import type { PermissionName } from "./auth/permissions.ts";

const env: Record<string, string | undefined> = { ...process.env };

function fail(message: string): never {
  // The last line of defence for every command's error: no URL password or token reaches stderr.
  process.stderr.write(`larderd: ${scrubString(message)}\n`);
  process.exit(1);
}

async function serverConfig(opts: { config?: string; listen?: string; mode: Mode }): Promise<Config> {
  let found = await readConfigText(opts.config, env);
  let firstRun = false;
  if (!found && opts.mode === "monolithic") {
    const paths = xdgPaths(env);
    await writeFirstRunConfig(paths);
    found = await readConfigText(undefined, env);
    firstRun = true;
  }
  if (!found) throw new ConfigError(`no config found at ${xdgPaths(env).configFile}; pass --config PATH`);
  let config: Config;
  try {
    config = parseConfig(found.text, env);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${found.source}: ${e.message}`);
    throw e;
  }
  if (opts.listen !== undefined) config = Object.freeze({ ...config, listen: parseListen(opts.listen) });
  if (firstRun) {
    const token = await makeToken(config, {
      sub: "root",
      validity: "2y",
      // Not `agent`: an agent token acts for one group, which a root token has no reason to pick.
      grants: new Map(PERMISSION_FLAGS.filter(([, permission]) => permission !== "agent").map(([, permission]) => [permission, ["*"]])),
    });
    const port = config.listen.port;
    const larder = invocation("larder", env);
    process.stdout.write(
      [
        "",
        "Welcome to larder! This is the first start: a configuration was written to",
        `  ${found.source}`,
        "with SQLite and local storage under",
        `  ${xdgPaths(env).dataDir}`,
        "",
        "A root token with every permission on every cache (valid 2 years):",
        "",
        `  ${token}`,
        "",
        "Log the client in, create your first cache and push to it:",
        "",
        `  ${larder} login local http://localhost:${port}/ ${token}`,
        `  ${larder} cache create hello`,
        `  ${larder} push hello ./result`,
        "",
        `or push with Nix itself: nix copy --to http://localhost:${port}/_push/hello ./result (README.md).`,
        ...(larder.startsWith("npx ") ? ["", "npx runs the commands from this checkout; npm link -w server puts larder and larderd on PATH."] : []),
        "",
      ].join("\n") + "\n",
    );
  }
  return config;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * Crash tests set LARDER_TEST_GC_KILL_AT=<step>:<n> (step: objects, nars or storage) to have a GC
 * run kill itself with SIGKILL at its n-th checkpoint of that step, as a power cut would, and
 * LARDER_TEST_GC_OBJECT_BATCH=<n> to make its object batches small enough that the kill lands
 * between two batches of one closure. Test-only; neither is configuration.
 */
function gcKillSwitch(spec: string | undefined, batch: string | undefined): Pick<ModeHooks, "gcCheckpoint" | "gcObjectBatch"> {
  const m = spec === undefined ? null : /^(objects|nars|storage):(\d+)$/.exec(spec);
  let seen = 0;
  return {
    ...(m && {
      gcCheckpoint: (step: string) => {
        if (step === m[1] && ++seen === Number(m[2])) process.kill(process.pid, "SIGKILL");
      },
    }),
    ...(batch !== undefined && /^[1-9]\d{0,5}$/.test(batch) && { gcObjectBatch: Number(batch) }),
  };
}

const program = new Command("larderd")
  .description("larder: a Nix binary cache server")
  .option("-f, --config <path>", "server.toml (default: $XDG_CONFIG_HOME/larder/server.toml)")
  .option("-l, --listen <addr>", "address to listen on, overriding the config (e.g. [::]:8080)")
  .addOption(new Option("--mode <mode>", "what to run").choices(MODES).default("monolithic"))
  .showHelpAfterError()
  .enablePositionalOptions()
  .action(async (opts: { config?: string; listen?: string; mode: Mode }) => {
    const config = await serverConfig(opts);
    const code = await runMode(opts.mode, config, {
      onSignal: (handler) => ["SIGINT", "SIGTERM"].forEach((s) => process.once(s, handler)),
      ...gcKillSwitch(env.LARDER_TEST_GC_KILL_AT, env.LARDER_TEST_GC_OBJECT_BATCH),
    });
    process.exitCode = code;
  });

const makeTokenCmd = program
  .command("make-token")
  .description("mint a token (printed on the last line)")
  .option("-f, --config <path>", "server.toml")
  .requiredOption("--sub <subject>", "who the token is for")
  .requiredOption("--validity <duration>", 'how long it is valid, e.g. "1h", "3 months", "2y"')
  .option("--dump-claims", "print the claims instead of a signed token")
  .option("--agent-group <name>", "the deploy-agent group an --agent token acts for (one per token)");
for (const [flag, , help] of PERMISSION_FLAGS) makeTokenCmd.option(`--${flag} <pattern>`, `${help} (repeatable)`, collect);
makeTokenCmd.action(async (opts: Record<string, unknown>) => {
  const config = await loadConfig(opts.config as string | undefined, env);
  const grants = new Map<PermissionName, string[]>();
  for (const [flag, permission] of PERMISSION_FLAGS) {
    const value = opts[flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
    if (Array.isArray(value)) grants.set(permission, value as string[]);
  }
  process.stdout.write(`${await makeToken(config, { sub: opts.sub as string, validity: opts.validity as string, grants, ...(typeof opts.agentGroup === "string" && { agentGroup: opts.agentGroup }), dumpClaims: opts.dumpClaims === true })}\n`);
});

program
  .command("create-cache <name>")
  .description("create a cache with a fresh signing key (prints its public key)")
  .option("-f, --config <path>", "server.toml")
  .option("--public", "anyone may pull without a token", false)
  .option("--priority <n>", "substituter priority (lower is preferred)", "41")
  .option("--store-dir <dir>", "store directory", "/nix/store")
  .option("--upstream-cache-key-name <name>", "key name whose signed paths clients skip (repeatable)", collect)
  .action(async (name: string, opts: { config?: string; public: boolean; priority: string; storeDir: string; upstreamCacheKeyName?: string[] }) => {
    const config = await loadConfig(opts.config, env);
    const priority = Number(opts.priority);
    if (!/^-?\d+$/.test(opts.priority) || priority < -(2 ** 31) || priority > 2 ** 31 - 1) fail(`--priority must be a whole number (32-bit, may be negative; got "${opts.priority}")`);
    const pub = await createCacheCommand(config, { name, isPublic: opts.public, priority, storeDir: opts.storeDir, upstreamCacheKeyNames: opts.upstreamCacheKeyName ?? ["cache.nixos.org-1"] });
    process.stdout.write(`created cache "${name}"; its public key:\n${pub}\n`);
  });

program
  .command("revoke-token")
  .description("refuse a token from now on: one token by id, or every token of a subject issued before now")
  .option("-f, --config <path>", "server.toml")
  .option("--jti <id>", "the token's id (its jti claim)")
  .option("--sub <subject>", "revoke all tokens of this subject issued before now")
  .action(async (opts: { config?: string; jti?: string; sub?: string }) => {
    const config = await loadConfig(opts.config, env);
    process.stdout.write(`${await revokeTokenCommand(config, opts)}\n`);
  });

program
  .command("bucket-layout")
  .description("public caches' layouts in the S3 bucket (docs/BUCKET.md)")
  .command("sync [cache]")
  .description("reconcile the layout of one cache (or all) with the database: remove what left, top-down; write what is missing, bottom-up; prints the counts")
  .option("-f, --config <path>", "server.toml")
  .action(async (cache: string | undefined, opts: { config?: string }) => {
    const config = await loadConfig(opts.config, env);
    const stats = await syncBucketLayout(config, cache);
    process.stdout.write(`${JSON.stringify(stats)}\n`);
    // Pending entries (a bucket error, a reference not in the cache) make a script retry.
    process.exitCode = stats.pending > 0 ? 2 : 0;
  });

/** Crash tests set LARDER_TEST_MOVE_KILL_AT=<copied|switched>:<n> to SIGKILL a drain or rebalance at its n-th such point. */
function moveKillSwitch(spec: string | undefined): ((step: string) => void) | undefined {
  const m = spec === undefined ? null : /^(copied|switched):(\d+)$/.exec(spec);
  if (!m) return undefined;
  let seen = 0;
  return (step) => {
    if (step === m[1] && ++seen === Number(m[2])) process.kill(process.pid, "SIGKILL");
  };
}

const storage = program.command("storage").description("what is stored on which backend, and moving it between backends");
const print = (line: string) => process.stdout.write(`${line}\n`);
storage
  .command("status")
  .description("objects and bytes per backend, its share under the strategy, old copies awaiting deletion")
  .option("-f, --config <path>", "server.toml")
  .action(async (opts: { config?: string }) => {
    await storageStatus(await loadConfig(opts.config, env), print);
  });
storage
  .command("drain <backend>")
  .description("stop placing new objects on a backend and move everything on it to the others (copy, verify, switch; old copies deleted after storage.retire-after)")
  .option("-f, --config <path>", "server.toml")
  .option("--dry-run", "say what would move, change nothing", false)
  .option("--undo", "let the backend take new objects again", false)
  .option("--wait <duration>", "how long servers take to see that the backend is draining (they reread it every 15s)", "16s")
  .action(async (backend: string, opts: { config?: string; dryRun: boolean; undo: boolean; wait: string }) => {
    const config = await loadConfig(opts.config, env);
    process.exitCode = await storageDrain(config, backend, { dryRun: opts.dryRun, undo: opts.undo, waitMs: parseDuration(opts.wait) * 1000 }, print, moveKillSwitch(env.LARDER_TEST_MOVE_KILL_AT));
  });
storage
  .command("rebalance")
  .description("move NARs so each backend holds its share under the strategy (split: by weight; least-used, round-robin: equal; in-order: fill in order)")
  .option("-f, --config <path>", "server.toml")
  .option("--dry-run", "say what would move, change nothing", false)
  .action(async (opts: { config?: string; dryRun: boolean }) => {
    process.exitCode = await storageRebalance(await loadConfig(opts.config, env), { dryRun: opts.dryRun }, print, moveKillSwitch(env.LARDER_TEST_MOVE_KILL_AT));
  });
storage
  .command("rename-backend <old> <new>")
  .description("record that the backend named <old> in the database is now named <new> in server.toml (change both together)")
  .option("-f, --config <path>", "server.toml")
  .option("--dry-run", "say what would change, change nothing", false)
  .action(async (from: string, to: string, opts: { config?: string; dryRun: boolean }) => {
    process.exitCode = await storageRenameBackend(await loadConfig(opts.config, env), from, to, { dryRun: opts.dryRun }, print);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
