import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decryptWith } from "../age/file.ts";
import type { ParsedIdentity } from "../age/keys.ts";
import { identitiesFor, type Context } from "../context.ts";
import { loadConfig } from "../recipients.ts";
import { loadLock, problemWith, saveLock } from "../state.ts";
import { writeSecret } from "./edit.ts";

export interface RekeyOptions {
  dryRun: boolean;
  /** Re-encrypt files that already match too (fresh file keys for everyone). */
  all: boolean;
}

/** Re-encrypts every file whose recipients differ from the config; returns the failure count. */
export async function rekey(ctx: Context, options: RekeyOptions): Promise<number> {
  const config = loadConfig(ctx.dir);
  const lock = loadLock(ctx.dir);
  let identities: ParsedIdentity[] | undefined;
  let failed = 0;
  for (const name of Object.keys(config.secrets).sort()) {
    const problem = problemWith(ctx.dir, config, lock, name);
    if (problem?.startsWith("missing")) {
      ctx.err(`${name}: skipped, ${problem}`);
      continue;
    }
    if (problem === null && !options.all) {
      ctx.err(`${name}: up to date`);
      continue;
    }
    if (options.dryRun) {
      ctx.err(`${name}: would re-encrypt (${problem ?? "--all"})`);
      continue;
    }
    try {
      identities ??= await identitiesFor(ctx);
      const plaintext = await decryptWith(new Uint8Array(readFileSync(join(ctx.dir, name))), identities, name);
      await writeSecret(ctx, name, plaintext);
      ctx.err(`${name}: re-encrypted`);
    } catch (error) {
      failed++;
      ctx.err(`${name}: FAILED, ${(error as Error).message}`);
    }
  }
  const current = loadLock(ctx.dir);
  const stale = Object.keys(current).filter((f) => config.secrets[f] === undefined);
  if (stale.length > 0 && !options.dryRun) {
    for (const f of stale) delete current[f];
    saveLock(ctx.dir, current);
  }
  if (failed > 0) ctx.err(`${failed} file(s) could not be re-encrypted; they still have their old recipients`);
  return failed;
}
