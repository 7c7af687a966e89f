/** An error the user can act on: printed as one line, exit status 1, never a stack trace. */
export class CliError extends Error {}

export function fail(message: string): never {
  throw new CliError(message);
}
