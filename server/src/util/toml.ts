/**
 * Parses TOML, and on failure says where: "line 3, column 1: invalid value". The offending text
 * is not repeated, since config lines may hold secrets.
 */
import { parse } from "smol-toml";

export class TomlSyntaxError extends Error {}

export function parseTomlText(text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (e) {
    const { line, column, message } = e as { line?: number; column?: number; message: string };
    const reason = message.split("\n")[0]?.replace(/^Invalid TOML document:\s*/, "") ?? "invalid TOML";
    throw new TomlSyntaxError(line !== undefined ? `line ${line}, column ${column ?? 1}: ${reason}` : reason);
  }
}
