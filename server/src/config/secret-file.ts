/**
 * Secrets given by path (`*-file` keys, `*_FILE` variables, systemd's `LoadCredential` under
 * $CREDENTIALS_DIRECTORY): read at the edge, so a secret never has to sit in the environment or
 * in a Nix store. Messages name the path and why it failed, never any content.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Far above any key or password (an RSA-4096 PEM in base64 is ~4 KiB); a bound on what a wrong path can cost. */
const MAX_SECRET_BYTES = 64 * 1024;

function reason(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return (e as NodeJS.ErrnoException).code ?? "unreadable";
  }
}

/**
 * The file's text without its trailing line break (editors and `echo` add one; no secret ends in one).
 * Throws an Error whose message is "cannot read PATH: WHY".
 */
export function readSecretFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new Error(`cannot read ${path}: ${reason(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new Error(`cannot read ${path}: is a directory`);
    const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
    let length = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, length, buf.length - length, null);
      } catch (e) {
        throw new Error(`cannot read ${path}: ${reason(e)}`);
      }
      if (n === 0) break;
      length += n;
      if (length > MAX_SECRET_BYTES) throw new Error(`cannot read ${path}: larger than ${MAX_SECRET_BYTES} bytes, not a secret`);
    }
    const text = buf.subarray(0, length).toString("utf8").replace(/\r?\n$/, "");
    if (text === "") throw new Error(`cannot read ${path}: the file is empty`);
    return text;
  } finally {
    closeSync(fd);
  }
}
