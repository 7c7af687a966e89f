/**
 * The one module that encrypts and decrypts, on top of typage plus the ssh recipient types.
 * An age file starts with a text header:
 *
 *     age-encryption.org/v1
 *     -> X25519 <share>            (one stanza per recipient, body lines follow)
 *     -> ssh-ed25519 <tag> <share>
 *     --- <header MAC>
 *     <binary payload>
 *
 * and may be wrapped in PEM-style armor ("-----BEGIN AGE ENCRYPTED FILE-----").
 */
import { armor, Decrypter, Encrypter } from "age-encryption";
import type { ParsedIdentity, ParsedRecipient } from "./keys.ts";

const VERSION_LINE = "age-encryption.org/v1";
const ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";

export class AgeFileError extends Error {}

export async function encryptTo(plaintext: Uint8Array, recipients: readonly ParsedRecipient[]): Promise<Uint8Array> {
  if (recipients.length === 0) throw new AgeFileError("no recipients: nobody could ever decrypt this file");
  const encrypter = new Encrypter();
  for (const r of recipients) encrypter.addRecipient(r.recipient);
  return encrypter.encrypt(plaintext);
}

function dearmor(bytes: Uint8Array, name: string): Uint8Array {
  const head = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart();
  if (!head.startsWith(ARMOR_BEGIN)) return bytes;
  try {
    return armor.decode(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new AgeFileError(`${name} is not a valid armored age file (${(error as Error).message})`);
  }
}

/** The arguments of each recipient stanza, read without decrypting anything. */
export function readStanzaArgs(bytes: Uint8Array, name: string): string[][] {
  const binary = dearmor(bytes, name);
  const end = Math.min(binary.length, 64 * 1024);
  const text = new TextDecoder("latin1").decode(binary.subarray(0, end));
  const lines = text.split("\n");
  if (lines[0] !== VERSION_LINE) throw new AgeFileError(`${name} is not an age file (no "${VERSION_LINE}" header)`);
  const stanzas: string[][] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith("--- ")) return stanzas;
    if (line.startsWith("-> ")) stanzas.push(line.slice(3).split(" "));
  }
  throw new AgeFileError(`${name} is corrupt: its age header never ends`);
}

export async function decryptWith(bytes: Uint8Array, identities: readonly ParsedIdentity[], name: string): Promise<Uint8Array> {
  const binary = dearmor(bytes, name);
  readStanzaArgs(binary, name);
  const decrypter = new Decrypter();
  for (const id of identities) decrypter.addIdentity(id.identity);
  try {
    return await decrypter.decrypt(binary);
  } catch (error) {
    const message = (error as Error).message;
    if (/no identity matched/i.test(message)) {
      const tried = identities.map((i) => abbreviate(i.publicKey)).join(", ");
      throw new AgeFileError(`none of your identities can decrypt ${name} (tried ${tried}); pass the right key with -i PATH, or ask someone who can read it to add you and run rekey`);
    }
    throw new AgeFileError(`${name} is corrupt or not an age file: ${message}`);
  }
}

export function abbreviate(publicKey: string): string {
  const [type, blob = ""] = publicKey.split(" ");
  return blob === "" ? `${publicKey.slice(0, 16)}…` : `${type} …${blob.slice(-12)}`;
}
