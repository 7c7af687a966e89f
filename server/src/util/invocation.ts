/**
 * How a hint should spell one of our commands: run through npm (`npx larder`, `npm start`, from a
 * checkout, where the commands are not on PATH) it is `npx larder`; installed (npm link, the Nix
 * package) plain `larder`. npm marks the processes it starts with npm_command.
 */
export function invocation(command: "larder" | "larderd", env: Record<string, string | undefined>): string {
  return env.npm_command ? `npx ${command}` : command;
}

/** `larder` as this process's user types it (read once, at startup). */
export const LARDER = invocation("larder", process.env);
