import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ageKey, cli, tempDir, writeConfig } from "./helpers.ts";

async function team() {
  const dir = tempDir();
  const alice = await ageKey(dir, "alice");
  const bob = await ageKey(dir, "bob");
  const host = await ageKey(dir, "host");
  const config = (admins: string[]) => ({
    people: { alice: alice.recipient, bob: bob.recipient },
    hosts: { larder: host.recipient },
    groups: { admins, servers: ["larder"] },
    secrets: { "env.age": ["admins", "servers"], "token.age": ["admins"], "host-only.age": ["servers"] },
  });
  writeConfig(dir, config(["alice", "bob"]));
  for (const [file, text] of [["env.age", "A=1\n"], ["token.age", "t0k3n"], ["host-only.age", "h"]] as const) {
    const r = cli(["--dir", dir, "add", file], { input: text });
    expect(r.code, r.stderr).toBe(0);
  }
  const decrypt = (who: { identityFile: string }, file: string) => cli(["--dir", dir, "-i", who.identityFile, "decrypt", file]);
  return { dir, alice, bob, host, config, decrypt };
}

describe("rekey", () => {
  it("after removing a recipient: that key can no longer decrypt, the others still can, untouched files stay", async () => {
    const t = await team();
    const hostOnly = join(t.dir, "host-only.age");
    const before = readFileSync(hostOnly);
    const mtime = statSync(hostOnly).mtimeMs;
    expect(t.decrypt(t.bob, "token.age").stdout).toBe("t0k3n");

    writeConfig(t.dir, t.config(["alice"]));
    const drift = cli(["--dir", t.dir, "check"]);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toMatch(/PROBLEM {2}token.age: recipients differ from recipients.json \(-age1/);
    expect(drift.stdout).toMatch(/ok {7}host-only.age/);

    const dry = cli(["--dir", t.dir, "-i", t.alice.identityFile, "rekey", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/token.age: would re-encrypt/);
    expect(cli(["--dir", t.dir, "check"]).code).toBe(1);

    const r = cli(["--dir", t.dir, "-i", t.alice.identityFile, "rekey"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/env.age: re-encrypted/);
    expect(r.stderr).toMatch(/token.age: re-encrypted/);
    expect(r.stderr).toMatch(/host-only.age: up to date/);

    const denied = t.decrypt(t.bob, "token.age");
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/none of your identities can decrypt token.age/);
    expect(t.decrypt(t.alice, "token.age").stdout).toBe("t0k3n");
    expect(t.decrypt(t.host, "env.age").stdout).toBe("A=1\n");
    expect(readFileSync(hostOnly).equals(before)).toBe(true);
    expect(statSync(hostOnly).mtimeMs).toBe(mtime);
    expect(cli(["--dir", t.dir, "check"]).code).toBe(0);
  });

  it("adds a new member's key and reports files it cannot decrypt without touching them", async () => {
    const t = await team();
    const carol = await (await import("./helpers.ts")).ageKey(t.dir, "carol");
    writeConfig(t.dir, {
      ...t.config(["alice", "bob", "carol"]),
      people: { alice: t.alice.recipient, bob: t.bob.recipient, carol: carol.recipient },
    });
    const hostOnly = readFileSync(join(t.dir, "host-only.age"));
    // bob can rewrite the admin files but not host-only.age, which is not affected anyway.
    const r = cli(["--dir", t.dir, "-i", t.bob.identityFile, "rekey"]);
    expect(r.code, r.stderr).toBe(0);
    expect(t.decrypt(carol, "token.age").stdout).toBe("t0k3n");
    expect(readFileSync(join(t.dir, "host-only.age")).equals(hostOnly)).toBe(true);

    writeConfig(t.dir, { ...t.config(["alice", "bob", "carol"]), people: { alice: t.alice.recipient, bob: t.bob.recipient, carol: carol.recipient }, hosts: { larder: carol.recipient } });
    const failing = cli(["--dir", t.dir, "-i", t.bob.identityFile, "rekey"]);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/host-only.age: FAILED, none of your identities can decrypt host-only.age/);
    expect(readFileSync(join(t.dir, "host-only.age")).equals(hostOnly)).toBe(true);
  });
});

describe("check", () => {
  it("catches a file rewritten outside the tool, a corrupt file, an unlisted file and a missing one", async () => {
    const t = await team();
    expect(cli(["--dir", t.dir, "check"]).code).toBe(0);
    const other = readFileSync(join(t.dir, "token.age"));
    writeFileSync(join(t.dir, "env.age"), other); // valid age file, wrong content and recipients
    writeFileSync(join(t.dir, "stray.age"), other);
    const r = cli(["--dir", t.dir, "check"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PROBLEM {2}env.age: changed since larder-secrets wrote it/);
    expect(r.stdout).toMatch(/PROBLEM {2}stray.age: not listed in recipients.json/);
    expect(r.stderr).toMatch(/2 problem\(s\)/);

    writeFileSync(join(t.dir, "token.age"), "garbage, not age\n");
    expect(cli(["--dir", t.dir, "check"]).stdout).toMatch(/token.age is not an age file/);
  });

  it("reports a missing file and a header that does not match the record", async () => {
    const t = await team();
    const lock = JSON.parse(readFileSync(join(t.dir, "recipients.lock.json"), "utf8"));
    lock.files["token.age"].recipients.push(t.host.recipient);
    lock.files["token.age"].recipients.sort();
    writeFileSync(join(t.dir, "recipients.lock.json"), JSON.stringify(lock));
    writeConfig(t.dir, { ...t.config(["alice", "bob"]), groups: { admins: ["alice", "bob", "larder"], servers: ["larder"] }, secrets: { ...t.config([]).secrets, "new.age": ["admins"] } });
    const r = cli(["--dir", t.dir, "check"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/token.age: header does not match the recorded recipients/);
    expect(r.stdout).toMatch(/new.age: missing; create it with "larder-secrets add new.age"/);
  });
});

describe("errors", () => {
  it("a corrupt file gives a clear error and stays untouched", async () => {
    const t = await team();
    const path = join(t.dir, "token.age");
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
    const r = t.decrypt(t.alice, "token.age");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^larder-secrets: token.age is corrupt or not an age file: /);
    const edit = cli(["--dir", t.dir, "-i", t.alice.identityFile, "edit", "token.age"], { env: { EDITOR: "true" } });
    expect(edit.code).toBe(1);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it("a wrong identity names the keys it tried and leaves the file untouched", async () => {
    const t = await team();
    const path = join(t.dir, "host-only.age");
    const bytes = readFileSync(path);
    const r = cli(["--dir", t.dir, "-i", t.alice.identityFile, "edit", "host-only.age"], { env: { EDITOR: "true" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/none of your identities can decrypt host-only.age \(tried age1/);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it("with no -i and no default keys, says where it looked", async () => {
    const t = await team();
    const r = cli(["--dir", t.dir, "decrypt", "token.age"], { env: { HOME: t.dir } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`looked for ${t.dir}/.ssh/id_ed25519 and ${t.dir}/.ssh/id_rsa; pass -i PATH`);
  });

  it("rejects a config with unknown keys, unknown members or duplicate names", async () => {
    const dir = tempDir();
    const a = await ageKey(dir, "a");
    const cases: [object, RegExp][] = [
      [{ people: {}, secret: {} }, /unknown key "secret"/],
      [{ people: { a: a.recipient }, groups: { admins: ["b"] } }, /groups.admins: "b" is not a person or host/],
      [{ people: { a: a.recipient }, hosts: { a: a.recipient } }, /hosts.a: "a" is already defined in people/],
      [{ people: { a: "ssh-dss AAAA" } }, /people.a: .*unsupported key type/],
      [{ people: { a: a.recipient }, secrets: { "../x.age": ["a"] } }, /secret paths are relative/],
      [{ people: { a: a.recipient }, secrets: { "x.age": ["nobody"] } }, /"nobody" is not a group, person or host/],
    ];
    for (const [config, message] of cases) {
      writeConfig(dir, config);
      const r = cli(["--dir", dir, "list"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it("list shows who can read what", async () => {
    const t = await team();
    const r = cli(["--dir", t.dir, "list"]);
    expect(r.stdout).toMatch(/env.age +admins \(alice, bob\), servers \(larder\)/);
    const json = JSON.parse(cli(["--dir", t.dir, "list", "--json"]).stdout);
    expect(json).toContainEqual({ file: "token.age", readers: ["admins"], owners: ["alice", "bob"] });
  });

  it("set-key replaces a host key, after which rekey gives the new key access", async () => {
    const t = await team();
    const newHost = await ageKey(t.dir, "new-host");
    const r = cli(["--dir", t.dir, "set-key", "larder", newHost.recipient]);
    expect(r.code, r.stderr).toBe(0);
    expect(cli(["--dir", t.dir, "check"]).code).toBe(1);
    const rekeyed = cli(["--dir", t.dir, "-i", t.alice.identityFile, "rekey"]);
    // host-only.age is readable by the old host key alone, so no admin can move it over.
    expect(rekeyed.code).toBe(1);
    expect(rekeyed.stderr).toMatch(/env.age: re-encrypted/);
    expect(rekeyed.stderr).toMatch(/host-only.age: FAILED/);
    expect(t.decrypt(newHost, "env.age").stdout).toBe("A=1\n");
    expect(t.decrypt(t.host, "env.age").code).toBe(1);
    expect(cli(["--dir", t.dir, "set-key", "nobody", newHost.recipient]).stderr).toMatch(/nobody is not a person or host/);
  });
});
