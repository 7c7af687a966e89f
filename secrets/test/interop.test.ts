/**
 * larder-secrets files are plain age files. The reference implementation (Debian's age 1.1.1)
 * must read what we write and we must read what it writes, for every key type we accept. The
 * age spec's published vectors (C2SP/CCTV) cover only X25519 and scrypt, so the ssh types are
 * cross-checked against the age CLI, live and through files it made (test/fixtures).
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Decrypter, Stanza } from "age-encryption";
import { describe, expect, it } from "vitest";
import { decryptWith, encryptTo, readStanzaArgs } from "../src/age/file.ts";
import { parseIdentityFile, parseRecipient } from "../src/age/keys.ts";
import { SshEd25519Identity } from "../src/age/ssh-ed25519.ts";
import { run, tempDir } from "./helpers.ts";
import { itWith } from "./tools.ts";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function sshKeygen(dir: string, type: "ed25519" | "rsa"): { key: string; pub: string } {
  const key = join(dir, `id_${type}`);
  const r = run("ssh-keygen", ["-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", "", "-C", "test", "-f", key]);
  expect(r.code, r.stderr).toBe(0);
  return { key, pub: readFileSync(`${key}.pub`, "utf8") };
}

function ageKeygen(dir: string): { key: string; pub: string } {
  const key = join(dir, "age.txt");
  expect(run("age-keygen", ["-o", key]).code).toBe(0);
  return { key, pub: run("age-keygen", ["-y", key]).stdout.trim() };
}

describe("round trips with the age CLI", () => {
  for (const type of ["ed25519", "rsa"] as const) {
    itWith(["age", "ssh-keygen"])(`ssh-${type}: age decrypts ours, we decrypt age's`, async () => {
      const dir = tempDir();
      const { key, pub } = sshKeygen(dir, type);
      const recipient = parseRecipient(pub);
      const identities = await parseIdentityFile(readFileSync(key, "utf8"), key);

      const ours = join(dir, "ours.age");
      writeFileSync(ours, await encryptTo(bytes(`ours for ssh-${type}\n`), [recipient]));
      const byAge = run("age", ["--decrypt", "-i", key, ours]);
      expect(byAge.stderr).toBe("");
      expect(byAge.stdout).toBe(`ours for ssh-${type}\n`);

      for (const armor of [[], ["--armor"]]) {
        const theirs = join(dir, "theirs.age");
        expect(run("age", ["--encrypt", ...armor, "-R", `${key}.pub`, "-o", theirs], `theirs for ssh-${type}`).code).toBe(0);
        expect(text(await decryptWith(new Uint8Array(readFileSync(theirs)), identities, "theirs.age"))).toBe(`theirs for ssh-${type}`);
      }
    });
  }

  itWith(["age", "age-keygen"])("X25519: age decrypts ours, we decrypt age's (age-keygen identity file)", async () => {
    const dir = tempDir();
    const { key, pub } = ageKeygen(dir);
    const identities = await parseIdentityFile(readFileSync(key, "utf8"), key);
    expect(identities.map((i) => i.publicKey)).toEqual([pub]);
    const ours = join(dir, "ours.age");
    writeFileSync(ours, await encryptTo(bytes("ours x25519"), [parseRecipient(pub)]));
    expect(run("age", ["-d", "-i", key, ours]).stdout).toBe("ours x25519");
    const theirs = join(dir, "theirs.age");
    expect(run("age", ["-e", "-r", pub, "-o", theirs], "theirs x25519").code).toBe(0);
    expect(text(await decryptWith(new Uint8Array(readFileSync(theirs)), identities, "theirs.age"))).toBe("theirs x25519");
  });

  itWith(["age", "age-keygen", "ssh-keygen"])("a file for several key types opens with each key in the age CLI", async () => {
    const dir = tempDir();
    const ed = sshKeygen(dir, "ed25519");
    const rsa = sshKeygen(dir, "rsa");
    const x = ageKeygen(dir);
    const file = join(dir, "multi.age");
    writeFileSync(file, await encryptTo(bytes("for all"), [ed.pub, rsa.pub, x.pub].map(parseRecipient)));
    for (const key of [ed.key, rsa.key, x.key]) expect(run("age", ["-d", "-i", key, file]).stdout).toBe("for all");
    const other = sshKeygen(tempDir(), "ed25519");
    const denied = run("age", ["-d", "-i", other.key, file]);
    expect(denied.code).not.toBe(0);
  });
});

describe("files made by age 1.1.1 (committed vectors)", () => {
  it("ssh-ed25519: decrypts with the test key; header tag is SHA-256(wire key)[:4]", async () => {
    const file = new Uint8Array(readFileSync(join(FIXTURES, "ssh-ed25519.by-age-1.1.1.age")));
    const ids = await parseIdentityFile(fixture("ssh-ed25519.key"), "ssh-ed25519.key");
    expect(text(await decryptWith(file, ids, "vector"))).toBe("made by age 1.1.1 for the ssh-ed25519 test key\n");
    const wire = Buffer.from(fixture("ssh-ed25519.key.pub").split(" ")[1] ?? "", "base64");
    const tag = createHash("sha256").update(wire).digest().subarray(0, 4).toString("base64").replace(/=+$/, "");
    const stanzas = readStanzaArgs(file, "vector");
    expect(stanzas).toHaveLength(1);
    expect(stanzas[0]?.slice(0, 2)).toEqual(["ssh-ed25519", tag]);
    expect(ids[0]?.publicKey).toBe(fixture("ssh-ed25519.key.pub").split(" ").slice(0, 2).join(" "));
  });

  it("ssh-rsa (armored): decrypts with the test key", async () => {
    const file = new Uint8Array(readFileSync(join(FIXTURES, "ssh-rsa.by-age-1.1.1.age.txt")));
    const ids = await parseIdentityFile(fixture("ssh-rsa.key"), "ssh-rsa.key");
    expect(text(await decryptWith(file, ids, "vector"))).toBe("made by age 1.1.1 for the ssh-rsa test key\n");
  });

  it("ours for the test keys produce the same stanza shape as age's", async () => {
    const ours = await encryptTo(bytes("x"), [parseRecipient(fixture("ssh-ed25519.key.pub")), parseRecipient(fixture("ssh-rsa.key.pub"))]);
    const theirs = readStanzaArgs(new Uint8Array(readFileSync(join(FIXTURES, "ssh-ed25519.by-age-1.1.1.age"))), "vector");
    const shape = readStanzaArgs(ours, "ours");
    expect(shape[0]?.slice(0, 2)).toEqual(theirs[0]?.slice(0, 2));
    expect(shape[0]?.[2]).toMatch(/^[A-Za-z0-9+/]{43}$/);
    expect(shape[1]?.[0]).toBe("ssh-rsa");
  });

  it("wrong keys and tampered stanzas: no match or a clear error, never a wrong plaintext", async () => {
    const file = new Uint8Array(readFileSync(join(FIXTURES, "ssh-ed25519.by-age-1.1.1.age")));
    const rsa = await parseIdentityFile(fixture("ssh-rsa.key"), "ssh-rsa.key");
    await expect(decryptWith(file, rsa, "vector")).rejects.toThrow(/none of your identities can decrypt vector/);

    const ed = (await parseIdentityFile(fixture("ssh-ed25519.key"), "k"))[0]?.identity as SshEd25519Identity;
    const [args = [], body] = [readStanzaArgs(file, "v")[0], new Uint8Array(32)];
    // A stanza with our tag but a body that does not authenticate is not ours: null, not a throw.
    expect(ed.unwrapFileKey([new Stanza(args, body)])).toBeNull();
    // A low-order share (all zeros) is rejected outright, as the spec requires.
    expect(() => ed.unwrapFileKey([new Stanza([args[0] ?? "", args[1] ?? "", "A".repeat(43)], body)])).toThrow(/low-order/);
    expect(() => ed.unwrapFileKey([new Stanza([args[0] ?? "", args[1] ?? ""], body)])).toThrow(/wrong number of arguments/);
    // typage with only its own identities cannot read the ssh stanza: proves ours did the work.
    await expect(new Decrypter().decrypt(file)).rejects.toThrow();
  });

  it("refuses passphrase-protected and unsupported keys with a hint", async () => {
    await expect(parseIdentityFile(fixture("ssh-ed25519-passphrase.key"), "k")).rejects.toThrow(/k is passphrase-protected.*use an age identity/);
    expect(() => parseRecipient("ssh-dss AAAAB3NzaC1kc3M=")).toThrow(/unsupported key type/);
    expect(() => parseRecipient("age1notakey")).toThrow(/not a valid age X25519 recipient/);
  });
});
