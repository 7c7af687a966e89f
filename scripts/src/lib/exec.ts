/**
 * The one way scripts start programs: an argument array through execa (no shell), echoed to
 * stderr before it runs so an operator sees exactly what happens.
 */
import { execa, type Options } from "execa";
import { fail } from "./errors.ts";

export function display(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

export interface RunOptions {
  cwd?: string;
  /** Capture stdout (returned) instead of passing it through. */
  capture?: boolean;
  /** Bytes or text for stdin; otherwise the terminal's stdin is inherited. */
  input?: string;
  quiet?: boolean;
}

export async function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  if (!options.quiet) process.stderr.write(`$ ${display(command, args)}\n`);
  const execaOptions: Options = {
    cwd: options.cwd,
    stdin: options.input === undefined ? "inherit" : "pipe",
    stdout: options.capture ? "pipe" : "inherit",
    stderr: "inherit",
    reject: false,
    ...(options.input === undefined ? {} : { input: options.input }),
  };
  const result = await execa(command, [...args], execaOptions);
  if (result.failed) {
    const why = result.exitCode !== undefined ? `exited with status ${result.exitCode}` : (result.shortMessage ?? "failed");
    fail(`${display(command, args).slice(0, 120)} ${why}`);
  }
  return typeof result.stdout === "string" ? result.stdout : "";
}
