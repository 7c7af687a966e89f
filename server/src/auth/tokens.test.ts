import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { buildClaims, signClaims, tokenKeys, TokenError, verifyToken } from "./tokens.ts";
import { canDiscover, permissionsFor } from "./permissions.ts";

describe("tokens", () => {
  it("round-trips HS256 with attic's claim layout", async () => {
    const keys = tokenKeys({ alg: "HS256", secret: randomBytes(32) });
    const token = await signClaims(keys, buildClaims({ sub: "ci", validitySeconds: 60, grants: { pull: ["team-*"], push: ["team-a"] } }));
    const claims = await verifyToken(keys, token);
    expect(claims.sub).toBe("ci");
    expect(claims.caches).toEqual({ "team-*": { r: 1 }, "team-a": { w: 1 } });
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("signs and verifies RS256; a public-key-only server verifies but cannot mint", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const signer = tokenKeys({ alg: "RS256", privatePem: privateKey.export({ type: "pkcs1", format: "pem" }) as string });
    const verifier = tokenKeys({ alg: "RS256", publicPem: publicKey.export({ type: "spki", format: "pem" }) as string });
    const token = await signClaims(signer, buildClaims({ sub: "x", validitySeconds: 60, grants: { pull: ["*"] } }));
    expect((await verifyToken(verifier, token)).sub).toBe("x");
    await expect(signClaims(verifier, buildClaims({ sub: "y", validitySeconds: 60, grants: {} }))).rejects.toThrow(/cannot mint/);
    // An HS256 token made with the public key as secret (the classic confusion attack) is refused.
    const hsKeys = tokenKeys({ alg: "HS256", secret: Buffer.from(publicKey.export({ type: "spki", format: "pem" }) as string) });
    const forged = await signClaims(hsKeys, buildClaims({ sub: "evil", validitySeconds: 60, grants: { pull: ["*"] } }));
    await expect(verifyToken(verifier, forged)).rejects.toThrow(TokenError);
  });

  it("binds issuer and audience when configured", async () => {
    const secret = randomBytes(32);
    const bound = tokenKeys({ alg: "HS256", secret }, "https://larder.example", ["larder"]);
    const token = await signClaims(bound, buildClaims({ sub: "a", validitySeconds: 60, grants: {} }));
    expect((await verifyToken(bound, token)).sub).toBe("a");
    const unbound = await signClaims(tokenKeys({ alg: "HS256", secret }), buildClaims({ sub: "a", validitySeconds: 60, grants: {} }));
    await expect(verifyToken(bound, unbound)).rejects.toThrow(/claim "iss"|claim "aud"/);
  });

  it("rejects a pattern that is not a cache-name pattern", () => {
    expect(() => buildClaims({ sub: "a", validitySeconds: 60, grants: { pull: ["bad/name"] } })).toThrow(/not a valid cache name pattern/);
  });
});

describe("permissions, as attic resolves them", () => {
  const patterns = { "team-*": { r: 1 }, "team-a": { r: 1, w: 1 }, "*": { r: 1, cc: 1 } };
  it("lets an exact name beat any pattern", () => {
    expect(permissionsFor(patterns, "team-a")).toMatchObject({ pull: true, push: true, createCache: false });
  });
  it("uses the first matching pattern and never merges sets", () => {
    expect(permissionsFor(patterns, "team-b")).toMatchObject({ pull: true, push: false, createCache: false });
    expect(permissionsFor(patterns, "other")).toMatchObject({ pull: true, createCache: true });
  });
  it("gives nothing, and no discovery, for a name no pattern matches", () => {
    const p = permissionsFor({ "team-*": { r: 1 } }, "secret");
    expect(canDiscover(p)).toBe(false);
  });
});
