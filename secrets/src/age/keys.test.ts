import { generateHybridIdentity, generateX25519Identity, identityToRecipient } from "age-encryption";
import { describe, expect, it } from "vitest";
import { parseRecipient } from "./keys.ts";

describe("age recipients", () => {
  it("takes X25519 keys whose data happens to start with 'pq'", async () => {
    // Found by a CI run: about 1 key in 1,000 does; the post-quantum check must look at bech32's HRP.
    let key = "";
    for (let i = 0; i < 20_000 && !key.startsWith("age1pq"); i++) key = await identityToRecipient(await generateX25519Identity());
    expect(key.startsWith("age1pq")).toBe(true);
    expect(parseRecipient(key).type).toBe("X25519");
  });

  it("refuses post-quantum recipients, which age 1.1 cannot read", async () => {
    const pq = await identityToRecipient(await generateHybridIdentity());
    expect(() => parseRecipient(pq)).toThrow(/post-quantum/);
  });
});
