/**
 * larder-secrets: age-encrypted secrets kept in the repository. This file is the process edge:
 * it parses arguments and the environment into a Context and maps errors to exit codes.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import type { Context } from "./context.ts";
import { secretName } from "./context.ts";
import { check } from "./commands/check.ts";
import { decryptFile } from "./commands/decrypt.ts";
import { addSecret, editSecret } from "./commands/edit.ts";
import { list } from "./commands/list.ts";
import { rekey } from "./commands/rekey.ts";
import { setKey } from "./commands/set-key.ts";
import { EditorAborted } from "./private-files.ts";
import { loadConfig } from "./recipients.ts";

const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), "..");

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function makeContext(program: Command): Context {
  const options = program.opts<{ dir?: string; identity: string[] }>();
  return {
    dir: resolve(options.dir ?? WORKSPACE),
    cwd: process.cwd(),
    home: process.env.HOME ?? homedir(),
    identityPaths: options.identity.map((p) => resolve(p)),
    editor: process.env.VISUAL || process.env.EDITOR || "vi",
    stdinIsTTY: process.stdin.isTTY === true,
    readStdin,
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    writeOut: (bytes) => process.stdout.write(bytes),
  };
}

async function pickSecret(ctx: Context): Promise<string> {
  const config = loadConfig(ctx.dir);
  const names = Object.keys(config.secrets).sort();
  if (names.length === 0) throw new Error("no secrets configured; list them under \"secrets\" in recipients.json");
  if (!ctx.stdinIsTTY) throw new Error("no FILE given and no terminal to pick one; pass FILE");
  const { select } = await import("@inquirer/prompts");
  return select({
    message: "Secret to edit",
    choices: names.map((name) => ({ value: name, name: existsSync(join(ctx.dir, name)) ? name : `${name} (new)` })),
  });
}

export function buildProgram(): Command {
  const program = new Command("larder-secrets")
    .description("Edit, rekey and check the age-encrypted secrets kept in the repository")
    .option("--dir <dir>", "secrets directory (holds recipients.json)", undefined)
    .option("-i, --identity <path>", "private key to decrypt with (ssh key or age identity file); repeatable", collect, [])
    .showHelpAfterError();

  program
    .command("edit")
    .argument("[file]", "secret to edit (picked interactively when omitted)")
    .description("decrypt into a private temp file, run $EDITOR, re-encrypt if changed")
    .action(async (file: string | undefined) => {
      const ctx = makeContext(program);
      await editSecret(ctx, file === undefined ? await pickSecret(ctx) : secretName(ctx, file));
    });

  program
    .command("add")
    .argument("<file>", "new secret, listed in recipients.json")
    .description("create a secret from stdin, or in $EDITOR when stdin is a terminal")
    .action(async (file: string) => {
      const ctx = makeContext(program);
      await addSecret(ctx, secretName(ctx, file));
    });

  program
    .command("decrypt")
    .argument("<file>", "any age file")
    .description("decrypt to stdout")
    .action(async (file: string) => decryptFile(makeContext(program), file));

  program
    .command("rekey")
    .description("re-encrypt every file whose recipients differ from recipients.json")
    .option("--dry-run", "only say what would be re-encrypted", false)
    .option("--all", "re-encrypt files that are up to date too", false)
    .action(async (options: { dryRun: boolean; all: boolean }) => {
      if ((await rekey(makeContext(program), options)) > 0) process.exitCode = 1;
    });

  program
    .command("list")
    .description("who can read what")
    .option("--json", "machine-readable output", false)
    .action((options: { json: boolean }) => list(makeContext(program), options.json));

  program
    .command("check")
    .description("verify every file is encrypted to exactly its configured recipients (no key needed)")
    .action(() => {
      const problems = check(makeContext(program));
      if (problems > 0) {
        process.stderr.write(`${problems} problem(s); fix them with "larder-secrets rekey" or the hints above\n`);
        process.exitCode = 1;
      }
    });

  program
    .command("set-key")
    .argument("<name>", "person or host in recipients.json")
    .argument("<public-key>", "its new public key (age1…, ssh-ed25519 …, ssh-rsa …)")
    .description("replace a person's or host's key (then run rekey)")
    .action((name: string, key: string) => {
      const ctx = makeContext(program);
      const { changed } = setKey(ctx, name, key);
      ctx.err(changed ? `${name}: key replaced; run "larder-secrets rekey"` : `${name}: key already current`);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    const cause = (error as Error).cause;
    process.stderr.write(`larder-secrets: ${(error as Error).message}\n`);
    process.exitCode = cause instanceof EditorAborted && cause.signal === "SIGINT" ? 130 : 1;
  }
}

await main(process.argv);
