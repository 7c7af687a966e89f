/**
 * `larder agent CACHE ENVIRONMENT`: parses its flags once against one schema, builds the agent
 * and runs it until SIGTERM/SIGINT. The token comes from a file (`--token-file`, or the server's
 * `token-file`/`token` in the client config), never from the command line.
 */
import { hostname } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { z } from "zod";
import { AGENT_NAME_RE, ENVIRONMENT_NAME_RE } from "../../api/deploy-types.ts";
import { loadClientConfig, normalizeEndpoint, parseCacheRef, type Env } from "../config.ts";
import { fail } from "../errors.ts";
import { LARDER } from "../../util/invocation.ts";
import { Activator, type ActivationKind } from "./activation.ts";
import { Agent } from "./agent.ts";
import { AgentApi, type AgentServer } from "./server-api.ts";
import { StateFile } from "./state.ts";
import { HostStore } from "./store.ts";
import { ProcessSupervisor, SystemdSupervisor, type Supervisor } from "./supervisor.ts";

const KINDS = ["system", "profile", "service"] as const;
const absolute = z.string().regex(/^\/[^\0]*$/, "must be an absolute path");
const assignment = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=[^\0]*$/, "must be NAME=VALUE");

export const agentFlags = z.strictObject({
  name: z.string().regex(AGENT_NAME_RE, "must be 1–63 of A-Z a-z 0-9 . _ -, starting with a letter or digit"),
  endpoint: z.string().optional(),
  tokenFile: absolute.optional(),
  server: z.string().optional(),
  stateDir: absolute,
  store: absolute.optional(),
  storeDir: absolute,
  profilesDir: absolute,
  profileRoot: z.array(absolute).optional(),
  allow: z.string().transform((s, c) => {
    const kinds = s.split(",").map((k) => k.trim()).filter(Boolean);
    const bad = kinds.filter((k) => !(KINDS as readonly string[]).includes(k));
    if (bad.length > 0 || kinds.length === 0) {
      c.addIssue({ code: "custom", message: `must be a comma-separated list of ${KINDS.join(", ")}` });
      return z.NEVER;
    }
    return new Set(kinds as ActivationKind[]);
  }),
  supervisor: z.enum(["systemd", "process"]),
  serviceEnv: z.array(assignment).optional(),
  serviceProperty: z.array(assignment).optional(),
});
export type AgentFlags = z.input<typeof agentFlags>;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function pairs(list: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list ?? []) {
    const i = a.indexOf("=");
    Object.defineProperty(out, a.slice(0, i), { value: a.slice(i + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

async function serverFor(env: Env, flags: z.infer<typeof agentFlags>, server: string | undefined): Promise<AgentServer> {
  if (flags.endpoint !== undefined) {
    if (server !== undefined) fail("give the cache without a server name when --endpoint says where the server is");
    if (flags.tokenFile === undefined) fail("--endpoint needs --token-file (the agent token is read from a file, never from the command line)");
    return { name: new URL(normalizeEndpoint(flags.endpoint)).host, endpoint: normalizeEndpoint(flags.endpoint), tokenFile: flags.tokenFile };
  }
  const cfg = await loadClientConfig(env);
  const name = server ?? cfg.defaultServer;
  if (name === undefined) fail(`no server is configured; give --endpoint URL --token-file FILE, or log in first: ${LARDER} login NAME URL --token-file FILE`);
  const s = cfg.servers.get(name);
  if (!s) fail(`unknown server "${name}"; add it with: ${LARDER} login ${name} URL --token-file FILE`);
  const tokenFile = flags.tokenFile ?? s.tokenFile;
  return { name, endpoint: s.endpoint, ...(tokenFile !== undefined ? { tokenFile } : s.token !== undefined && { token: s.token }) };
}

export function registerAgent(program: Command, env: Env, out: (line: string) => void): void {
  program
    .command("agent <cache> <environment>")
    .description("run a deploy agent: follow ENVIRONMENT's deployments of CACHE on this host (run by systemd)")
    .option("--name <name>", "this host's agent name", hostname())
    .option("--endpoint <url>", "the server's URL, instead of a configured server (needs --token-file)")
    .option("--token-file <path>", "file holding the agent token (make-token --agent CACHE --agent-group GROUP --pull CACHE)")
    .option("--state-dir <dir>", "where the agent keeps its state, service profiles and netrc", "/var/lib/larder-agent")
    .option("--store <dir>", "use a chroot store in DIR (Nix's --store DIR), for tests and staging")
    .option("--store-dir <dir>", "the store directory paths are named in", "/nix/store")
    .option("--profiles-dir <dir>", "the directory of the system profile", "/nix/var/nix/profiles")
    .option("--profile-root <dir>", "a directory under which `profile` activations may set profiles (repeatable; default: --profiles-dir)", collect)
    .option("--allow <kinds>", "activation kinds this host accepts", KINDS.join(","))
    .option("--supervisor <kind>", "what runs `service` activations: systemd (transient units), or process (tests and development only)", "systemd")
    .option("--service-env <NAME=VALUE>", "environment of services, their migrations and health checks (repeatable)", collect)
    .option("--service-property <NAME=VALUE>", "a systemd unit property for services, e.g. DynamicUser=yes (repeatable)", collect)
    .action(async (ref: string, environment: string, raw: Record<string, unknown>) => {
      const parsed = agentFlags.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        fail(`--${String(issue?.path[0] ?? "").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue?.message}`);
      }
      const flags = parsed.data;
      if (!ENVIRONMENT_NAME_RE.test(environment)) fail(`invalid environment name "${environment}": use 1–50 of a-z 0-9 _ -, starting with a letter or digit`);
      const { server, cache } = parseCacheRef(ref);
      const agentServer = await serverFor(env, flags, server);
      const nixEnv = { ...(env as Record<string, string>) };
      const store = new HostStore({ root: flags.store, storeDir: flags.storeDir, stateDir: flags.stateDir, env: nixEnv });
      const supervisor: Supervisor =
        flags.supervisor === "systemd" ? new SystemdSupervisor(flags.serviceProperty ?? [], nixEnv) : new ProcessSupervisor(join(flags.stateDir, "services"));
      const activator = new Activator(store, supervisor, {
        profilesDir: flags.profilesDir,
        profileRoots: flags.profileRoot ?? [flags.profilesDir],
        allowedKinds: flags.allow,
        stateDir: flags.stateDir,
        serviceEnv: pairs(flags.serviceEnv),
        env: nixEnv,
      });
      const stop = new AbortController();
      for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
      const log = (line: string) => out(`${flags.name}: ${line}`);
      log(`following ${cache}/${environment} on ${agentServer.endpoint} (state in ${flags.stateDir}, ${supervisor.kind} supervisor)`);
      const agent = new Agent({ api: new AgentApi(agentServer, cache, environment, flags.name), store, activator, state: new StateFile(flags.stateDir), log, signal: stop.signal });
      await agent.run();
      log("stopped");
    });
}
