import type { Context } from "../context.ts";
import { loadConfig } from "../recipients.ts";
import { LOCK_FILE, loadLock, problemWith, unlistedFiles } from "../state.ts";

/** Every listed file matches its configured recipients; returns the number of problems. */
export function check(ctx: Context): number {
  const config = loadConfig(ctx.dir);
  const lock = loadLock(ctx.dir);
  let problems = 0;
  if (Object.keys(config.secrets).length === 0) ctx.out("no secrets configured yet; list them under \"secrets\" in recipients.json");
  for (const name of Object.keys(config.secrets).sort()) {
    const problem = problemWith(ctx.dir, config, lock, name);
    if (problem === null) {
      ctx.out(`ok       ${name}`);
    } else {
      problems++;
      ctx.out(`PROBLEM  ${name}: ${problem}`);
    }
  }
  for (const name of unlistedFiles(ctx.dir, config)) {
    problems++;
    ctx.out(`PROBLEM  ${name}: not listed in recipients.json; add it under "secrets" or delete it`);
  }
  for (const name of Object.keys(lock).filter((f) => config.secrets[f] === undefined)) {
    problems++;
    ctx.out(`PROBLEM  ${name}: still recorded in ${LOCK_FILE} but not configured; run "larder-secrets rekey"`);
  }
  return problems;
}
