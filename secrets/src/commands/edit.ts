import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { decryptWith, encryptTo } from "../age/file.ts";
import { identitiesFor, type Context } from "../context.ts";
import { runEditor, withPrivateDir, writeAtomic } from "../private-files.ts";
import { loadConfig, readersOf } from "../recipients.ts";
import { loadLock, saveLock, sha256Hex } from "../state.ts";

/** Encrypts `plaintext` to the current readers of `name` and records it in the lock file. */
export async function writeSecret(ctx: Context, name: string, plaintext: Uint8Array): Promise<void> {
  const config = loadConfig(ctx.dir);
  const readers = readersOf(config, name);
  const ciphertext = await encryptTo(plaintext, readers.map((r) => r.key));
  writeAtomic(join(ctx.dir, name), ciphertext);
  const lock = loadLock(ctx.dir);
  lock[name] = { sha256: sha256Hex(ciphertext), recipients: readers.map((r) => r.key.canonical).sort() };
  saveLock(ctx.dir, lock);
}

/**
 * Decrypts into a private temporary file, runs the editor, and re-encrypts only if the bytes
 * changed. The plaintext file goes away on every path out (see private-files.ts).
 */
export async function editSecret(ctx: Context, name: string): Promise<void> {
  const config = loadConfig(ctx.dir);
  readersOf(config, name); // fail before decrypting if the file is not listed
  const path = join(ctx.dir, name);
  const exists = existsSync(path);
  const original = exists
    ? await decryptWith(new Uint8Array(readFileSync(path)), await identitiesFor(ctx), name)
    : new Uint8Array(0);
  await withPrivateDir(async (dir) => {
    const plainPath = join(dir, basename(name, ".age"));
    writeFileSync(plainPath, original, { mode: 0o600, flag: "wx" });
    try {
      await runEditor(ctx.editor, plainPath);
    } catch (error) {
      throw new Error(`${(error as Error).message}; ${name} left unchanged`, { cause: error });
    }
    const edited = new Uint8Array(readFileSync(plainPath));
    if (Buffer.from(edited).equals(Buffer.from(original))) {
      ctx.err(`${name}: unchanged, not re-encrypted`);
      return;
    }
    if (!exists && edited.length === 0) {
      ctx.err(`${name}: empty, not created`);
      return;
    }
    await writeSecret(ctx, name, edited);
    ctx.err(`${name}: ${exists ? "updated" : "created"}`);
  });
}

export async function addSecret(ctx: Context, name: string): Promise<void> {
  readersOf(loadConfig(ctx.dir), name);
  if (existsSync(join(ctx.dir, name))) throw new Error(`${name} already exists; change it with "larder-secrets edit ${name}"`);
  if (ctx.stdinIsTTY) return editSecret(ctx, name);
  const plaintext = await ctx.readStdin();
  if (plaintext.length === 0) throw new Error(`stdin was empty; ${name} not created`);
  await writeSecret(ctx, name, plaintext);
  ctx.err(`${name}: created`);
}
