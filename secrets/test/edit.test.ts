import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ageKey, cli, cliAsync, tempDir, writeConfig } from "./helpers.ts";

/**
 * A scripted $EDITOR: it records the file it was given (and that file's and directory's modes)
 * in $EDIT_LOG, then acts according to $EDIT_MODE.
 */
function editorScript(dir: string): string {
  const path = join(dir, "editor.sh");
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      'printf "%s\\n%s\\n%s\\n" "$1" "$(stat -c %a "$1")" "$(stat -c %a "$(dirname "$1")")" > "$EDIT_LOG"',
      'cp "$1" "$EDIT_LOG.seen"',
      'case "$EDIT_MODE" in',
      '  change) printf "new secret\\n" > "$1" ;;',
      "  same) : ;;",
      '  fail) printf "half-typed" > "$1"; exit 3 ;;',
      "  hang) exec sleep 30 ;;",
      "esac",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return path;
}

async function setup() {
  const dir = tempDir();
  const alice = await ageKey(dir, "alice");
  writeConfig(dir, { people: { alice: alice.recipient }, groups: { admins: ["alice"] }, secrets: { "token.age": ["admins"] } });
  const created = cli(["--dir", dir, "add", "token.age"], { input: "old secret\n" });
  expect(created.code, created.stderr).toBe(0);
  const log = join(dir, "edit.log");
  const env = { EDITOR: editorScript(dir), EDIT_LOG: log };
  const edit = (mode: string) => cli(["--dir", dir, "-i", alice.identityFile, "edit", "token.age"], { env: { ...env, EDIT_MODE: mode } });
  const decrypt = () => cli(["--dir", dir, "-i", alice.identityFile, "decrypt", "token.age"]).stdout;
  const file = join(dir, "token.age");
  /** The plaintext path the editor saw; it and its directory must be gone afterwards. */
  const editorSaw = () => {
    const [path = "", fileMode, dirMode] = readFileSync(log, "utf8").trim().split("\n");
    return { path, fileMode, dirMode };
  };
  return { dir, alice, edit, decrypt, file, editorSaw, log, env };
}

describe("edit", () => {
  it("re-encrypts changed content; the plaintext lived in a private dir that is gone", async () => {
    const s = await setup();
    const r = s.edit("change");
    expect(r.code, r.stderr).toBe(0);
    expect(s.decrypt()).toBe("new secret\n");
    const saw = s.editorSaw();
    expect(readFileSync(`${s.log}.seen`, "utf8")).toBe("old secret\n");
    expect(saw.fileMode).toBe("600");
    expect(saw.dirMode).toBe("700");
    expect(existsSync(saw.path)).toBe(false);
    expect(existsSync(dirname(saw.path))).toBe(false);
    expect(cli(["--dir", s.dir, "check"]).code).toBe(0);
  });

  it("leaves the file's bytes and mtime alone when nothing changed", async () => {
    const s = await setup();
    const before = readFileSync(s.file);
    const mtime = statSync(s.file).mtimeMs;
    const r = s.edit("same");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/unchanged, not re-encrypted/);
    expect(readFileSync(s.file).equals(before)).toBe(true);
    expect(statSync(s.file).mtimeMs).toBe(mtime);
    expect(existsSync(dirname(s.editorSaw().path))).toBe(false);
  });

  it("keeps the original when the editor fails", async () => {
    const s = await setup();
    const before = readFileSync(s.file);
    const r = s.edit("fail");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/editor exited with status 3; token.age left unchanged/);
    expect(readFileSync(s.file).equals(before)).toBe(true);
    expect(existsSync(dirname(s.editorSaw().path))).toBe(false);
  });

  it("keeps the original and removes the plaintext on Ctrl-C (SIGINT to the process group)", async () => {
    const s = await setup();
    const before = readFileSync(s.file);
    const child = cliAsync(["--dir", s.dir, "-i", s.alice.identityFile, "edit", "token.age"], { ...s.env, EDIT_MODE: "hang" });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += String(d)));
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    await waitFor(() => existsSync(s.log) && readFileSync(s.log, "utf8").split("\n").length >= 3);
    expect(existsSync(s.editorSaw().path)).toBe(true);
    process.kill(-(child.pid as number), "SIGINT");
    const code = await exited;
    expect(code, stderr).not.toBe(0);
    expect(readFileSync(s.file).equals(before)).toBe(true);
    expect(existsSync(dirname(s.editorSaw().path))).toBe(false);
  });

  it("removes the plaintext when the CLI alone gets SIGTERM while the editor runs", async () => {
    const s = await setup();
    const before = readFileSync(s.file);
    const child = cliAsync(["--dir", s.dir, "-i", s.alice.identityFile, "edit", "token.age"], { ...s.env, EDIT_MODE: "hang" });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    await waitFor(() => existsSync(s.log) && readFileSync(s.log, "utf8").split("\n").length >= 3);
    child.kill("SIGTERM");
    expect(await exited).toBe(143);
    expect(readFileSync(s.file).equals(before)).toBe(true);
    expect(existsSync(dirname(s.editorSaw().path))).toBe(false);
  });

  it("creates a new listed file through the editor and refuses unlisted ones", async () => {
    const s = await setup();
    writeConfig(s.dir, {
      people: { alice: s.alice.recipient },
      groups: { admins: ["alice"] },
      secrets: { "token.age": ["admins"], "fresh.age": ["alice"] },
    });
    const r = cli(["--dir", s.dir, "-i", s.alice.identityFile, "edit", "fresh.age"], { env: { ...s.env, EDIT_MODE: "change" } });
    expect(r.code, r.stderr).toBe(0);
    expect(cli(["--dir", s.dir, "-i", s.alice.identityFile, "decrypt", "fresh.age"]).stdout).toBe("new secret\n");
    const unlisted = cli(["--dir", s.dir, "-i", s.alice.identityFile, "edit", "stray.age"], { env: { ...s.env, EDIT_MODE: "change" } });
    expect(unlisted.code).toBe(1);
    expect(unlisted.stderr).toMatch(/stray.age is not listed in recipients.json/);
    expect(existsSync(join(s.dir, "stray.age"))).toBe(false);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting for the editor to start");
    await new Promise((r) => setTimeout(r, 25));
  }
}
