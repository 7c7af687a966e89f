/** `larder deploy …`: the command line of client/deploy.ts. */
import { Command, Option } from "commander";
import type { Api } from "./api.ts";
import { CliError } from "./errors.ts";
import { activate, buildActivation, control, describe, follow, Follower, history, listEnvironments, logs, status, type RolloutFlags } from "./deploy.ts";

export interface DeployDeps {
  apiFor(ref: string): Promise<{ api: Api; cache: string }>;
  out(line: string): void;
}

function positive(flag: string) {
  return (v: string) => {
    if (!/^[1-9]\d*$/.test(v)) throw new CliError(`${flag} must be a positive whole number (got "${v}")`);
    return Number(v);
  };
}

/** Follows deployment `id` to its end on stderr and sets the exit status (0 succeeded, 1 failed, 2 paused). */
async function wait(api: Api, cache: string, env: string, id: number, out: (l: string) => void): Promise<void> {
  const f = new Follower(process.stderr, process.stderr.isTTY === true);
  const r = await follow(api, cache, env, id, (s) => f.show(s));
  out(r.why);
  process.exitCode = r.code;
}

export function registerDeployCommands(program: Command, { apiFor, out }: DeployDeps): void {
  const deploy = program.command("deploy").description("roll store paths out to hosts running larder agent (docs/DEPLOY.md)");

  deploy
    .command("activate <cache> <env> <target>")
    .description("deploy TARGET (a store path, ./result link, or a deploy.json request) to environment ENV")
    .option("--group <name>", 'the agent group the store path is for (default: every group, "*")')
    .option("--activation <kind>", "system, profile:/ABSOLUTE/PROFILE or service:UNIT (default system)")
    .option("--max-unavailable <n>", 'agents out of service at once: a count or a percentage like "25%" (default 1)')
    .option("--canaries <n>", "agents that must pass their health check before any other gets a slot (default 0)")
    .option("--health-url <url>", "health check: a URL fetched on each host; any 2xx passes")
    .option("--health-command <cmd>", "health check: a command (words, or a JSON array), relative to the target path")
    .option("--health-timeout <seconds>", "how long a health check may take to pass (default 60)")
    .option("--migration <cmd>", "run once per deployment, by the first agent, before it switches")
    .addOption(new Option("--no-pause-on-failure", "carry on with the other agents when one fails"))
    .option("--auto-rollback", "when an agent fails, return every switched agent to its previous path")
    .option("--agent-timeout <seconds>", "an agent silent this long while holding a slot loses it (default 300)")
    .option("--supersede", "replace a rollout that is still running")
    .option("-m, --message <text>", "recorded in the history (commit, CI run URL)")
    .option("--wait", "follow the rollout to its end; exit 0 succeeded, 1 failed, 2 paused")
    .action(async (ref: string, env: string, target: string, o: RolloutFlags & { wait?: boolean; pauseOnFailure: boolean }, cmd: Command) => {
      const { api, cache } = await apiFor(ref);
      // commander sets --no-pause-on-failure's default (true) always: only an explicit flag counts.
      const flags: RolloutFlags = { ...o };
      if (cmd.getOptionValueSource("pauseOnFailure") !== "cli") delete flags.pauseOnFailure;
      const body = await buildActivation(target, flags);
      const s = await activate(api, cache, env, body);
      const id = s.current?.id as number;
      out(`deployment ${id} of ${cache}/${env} started: ${Object.entries(s.current?.targets ?? {}).map(([g, p]) => `${g} → ${p}`).join(", ")}`);
      if (o.wait) await wait(api, cache, env, id, out);
    });

  deploy
    .command("status <cache> [env]")
    .description("the current deployment of ENV and its agents (every environment without ENV)")
    .option("--json", "print the raw status")
    .action(async (ref: string, env: string | undefined, o: { json?: boolean }) => {
      const { api, cache } = await apiFor(ref);
      const list = env === undefined ? await listEnvironments(api, cache) : [await status(api, cache, env)];
      if (o.json) return out(JSON.stringify(env === undefined ? { environments: list } : list[0], null, 2));
      if (list.length === 0) out(`no environments in "${cache}" yet`);
      for (const s of list) for (const line of describe(s)) out(line);
    });

  deploy
    .command("history <cache> <env>")
    .description("deployments of ENV, newest first")
    .option("--limit <n>", "how many", positive("--limit"), 20)
    .action(async (ref: string, env: string, o: { limit: number }) => {
      const { api, cache } = await apiFor(ref);
      const list = await history(api, cache, env, o.limit);
      if (list.length === 0) out(`nothing deployed to "${env}" yet`);
      for (const d of list) {
        const targets = Object.entries(d.targets).map(([g, p]) => `${g}=${p}`).join(" ");
        out(`${d.id}\t${d.state}\t${d.createdAt}\t${d.createdBy ?? "-"}\t${d.rollbackOf !== null ? `rollback-of ${d.rollbackOf}\t` : ""}${targets}${d.message ? `\t${d.message}` : ""}`);
      }
    });

  deploy
    .command("rollback <cache> <env>")
    .description("deploy an earlier deployment's targets again (default: the one before the current)")
    .option("--to <id>", "the deployment to return to", positive("--to"))
    .option("-m, --message <text>", "recorded in the history")
    .option("--wait", "follow the rollback to its end; exit 0 succeeded, 1 failed, 2 paused")
    .action(async (ref: string, env: string, o: { to?: number; message?: string; wait?: boolean }) => {
      const { api, cache } = await apiFor(ref);
      const s = await control(api, cache, env, "rollback", { ...(o.to !== undefined && { to: o.to }), ...(o.message !== undefined && { message: o.message }) });
      const id = s.current?.id as number;
      out(`deployment ${id} of ${cache}/${env} rolls back to deployment ${s.current?.rollbackOf}`);
      if (o.wait) await wait(api, cache, env, id, out);
    });

  for (const [name, help] of [
    ["pause", "hand out no more rollout slots (agents finish their current step)"],
    ["resume", "continue a paused rollout; failed agents may try again"],
  ] as const) {
    deploy
      .command(`${name} <cache> <env>`)
      .description(help)
      .action(async (ref: string, env: string) => {
        const { api, cache } = await apiFor(ref);
        const s = await control(api, cache, env, name);
        out(`deployment ${s.current?.id} of ${cache}/${env} is ${s.current?.state}`);
      });
  }

  deploy
    .command("logs <cache> <env>")
    .description("what agents reported of their steps (migration, activation, health check, rollback)")
    .option("--deployment <id>", "which deployment (default: the current one)", positive("--deployment"))
    .option("--agent <name>", "only this agent")
    .action(async (ref: string, env: string, o: { deployment?: number; agent?: string }) => {
      const { api, cache } = await apiFor(ref);
      const id = o.deployment ?? (await status(api, cache, env)).current?.id;
      if (id === undefined) throw new CliError(`nothing deployed to "${env}" yet`);
      const list = await logs(api, cache, env, id, o.agent);
      if (list.length === 0) out(`no logs for deployment ${id}${o.agent ? ` from ${o.agent}` : ""}`);
      for (const l of list) {
        out(`── ${l.at} ${l.agent} ${l.step} ${l.ok ? "ok" : "FAILED"}`);
        if (l.log !== "") out(l.log.replace(/\n$/, ""));
      }
    });
}
