/** A failed precondition or step, with the fix in the message; printed as one line. */
export class ScriptError extends Error {}

export function fail(message: string): never {
  throw new ScriptError(message);
}
