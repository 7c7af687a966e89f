/**
 * The process edge every script shares: run the body, print a failure as one line naming the
 * script, and exit non-zero. Only here do scripts touch process.exit.
 */
import { basename } from "node:path";
import { ScriptError } from "./errors.ts";

export function runMain(scriptUrl: string, body: () => Promise<number | void>): void {
  const name = basename(new URL(scriptUrl).pathname, ".ts");
  body().then(
    (code) => {
      process.exitCode = typeof code === "number" ? code : 0;
    },
    (error: unknown) => {
      const message = error instanceof ScriptError || error instanceof Error ? error.message : String(error);
      process.stderr.write(`${name}: ${message.split("\n")[0]}\n`);
      process.exitCode = 1;
    },
  );
}
