import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { buildClaims, signClaims, tokenKeys, TokenError, verifyToken } from "./tokens.ts";
import { canDiscover, grantsFromClaim, matchesPattern, permissionsFor } from "./permissions.ts";

describe("tokens", () => {
  it("round-trips HS256 with attic's claim layout", async () => {
    const keys = tokenKeys({ alg: "HS256", secret: randomBytes(32) });
    const token = await signClaims(keys, buildClaims({ sub: "ci", validitySeconds: 60, grants: { pull: ["team-*"], push: ["team-a"] } }));
    const claims = await verifyToken(keys, token);
    expect(claims.sub).toBe("ci");
    expect(claims.caches).toEqual(grantsFromClaim({ "team-*": { r: 1 }, "team-a": { w: 1 } }));
    expect([...claims.caches.keys()]).toEqual(["team-*", "team-a"]);
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
  const patterns = grantsFromClaim({ "team-*": { r: 1 }, "team-a": { r: 1, w: 1 }, "*": { r: 1, cc: 1 } });
  it("lets an exact name beat any pattern", () => {
    expect(permissionsFor(patterns, "team-a")).toMatchObject({ pull: true, push: true, createCache: false });
  });
  it("uses the first matching pattern and never merges sets", () => {
    expect(permissionsFor(patterns, "team-b")).toMatchObject({ pull: true, push: false, createCache: false });
    expect(permissionsFor(patterns, "other")).toMatchObject({ pull: true, createCache: true });
  });
  it("gives nothing, and no discovery, for a name no pattern matches", () => {
    const p = permissionsFor(grantsFromClaim({ "team-*": { r: 1 } }), "secret");
    expect(canDiscover(p)).toBe(false);
  });

  it("matches `*` as any run of characters", () => {
    const cases: [string, string, boolean][] = [
      ["*", "x", true], ["a*", "a", true], ["a*", "ba", false], ["*a", "ba", true], ["a*b*c", "abc", true],
      ["a*b*c", "aXbYc", true], ["a*b*c", "acb", false], ["ab*ab", "ab", false], ["ab*ab", "abab", true],
      ["*aab*", "xaaab", true], ["a**b", "ab", true], ["team-*-ci", "team-x-ci", true], ["team-*-ci", "team--c", false],
      ["*abab*", "aabab", true], ["*abcabd*", "abcabcabd", true], ["x+*", "x+y", true], ["x*", "X", false],
    ];
    for (const [pattern, name, want] of cases) expect(matchesPattern(pattern, name), `${pattern} ~ ${name}`).toBe(want);
  });

  it("matches pathological patterns in linear steps, not by backtracking (issue 13.5)", () => {
    // With a backtracking regex each extra `*` multiplied the time (seconds at 8 stars).
    const worst: [string, string][] = [
      [`${"a*".repeat(24)}c`, "a".repeat(50)],
      [`${"*a".repeat(24)}*c`, "a".repeat(50)],
      [`*${"ab".repeat(12)}*${"ab".repeat(12)}c`, "ab".repeat(25)],
      ["*aaaaaaaaaaaaaaaaaaaaaaaab*", "a".repeat(50)],
    ];
    for (const [pattern, name] of worst) {
      const count = { steps: 0 };
      expect(matchesPattern(pattern, name, count)).toBe(false);
      expect(count.steps, pattern).toBeLessThanOrEqual(3 * (pattern.length + name.length));
    }
    const grants = grantsFromClaim({ [`${"a*".repeat(24)}c`]: { r: 1 } });
    expect(canDiscover(permissionsFor(grants, "a".repeat(50)))).toBe(false);
  });

  it("never answers from Object.prototype: names like constructor or __proto__ (issue 13.11)", () => {
    const star = grantsFromClaim({ "*": { r: 1, w: 1 } });
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "__defineGetter__"]) {
      expect(permissionsFor(star, name), name).toMatchObject({ pull: true, push: true, delete: false });
      expect(canDiscover(permissionsFor(grantsFromClaim({ "team-*": { r: 1 } }), name)), name).toBe(false);
    }
    // A token whose own claim names them grants exactly what it says, and JSON's own "__proto__"
    // member is data, not a prototype.
    const own = grantsFromClaim(JSON.parse('{"constructor": {"r": 1}, "__proto__": {"w": 1}, "toString": {"w": "1"}}'));
    expect(permissionsFor(own, "constructor")).toMatchObject({ pull: true, push: false });
    expect(permissionsFor(own, "toString")).toMatchObject({ pull: false, push: false });
    expect(canDiscover(permissionsFor(own, "valueOf"))).toBe(false);
    expect(() => grantsFromClaim({ a: null, b: 3, c: [1] })).not.toThrow();
  });

  it("mints prototype-named patterns as plain data (no Object.prototype pollution)", () => {
    const claims = buildClaims({ sub: "a", validitySeconds: 60, grants: { pull: ["constructor", "toString"], push: ["constructor"] } });
    const caches = (claims["https://jwt.attic.rs/v1"] as { caches: Record<string, unknown> }).caches;
    expect(JSON.parse(JSON.stringify(caches))).toEqual({ constructor: { r: 1, w: 1 }, toString: { r: 1 } });
    expect(({} as Record<string, unknown>).r).toBeUndefined();
    expect((Object as unknown as Record<string, unknown>).r).toBeUndefined();
  });
});
