import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { decryptWith } from "../age/file.ts";
import { identitiesFor, type Context } from "../context.ts";

/** Any age file, listed or not: scripts use this to read a secret into a pipe. */
export async function decryptFile(ctx: Context, file: string): Promise<void> {
  const candidates = [resolve(ctx.cwd, file), resolve(ctx.dir, file)];
  const path = candidates.find((p) => existsSync(p));
  if (path === undefined) throw new Error(`${file} not found`);
  const plaintext = await decryptWith(new Uint8Array(readFileSync(path)), await identitiesFor(ctx), file);
  ctx.writeOut(plaintext);
}
