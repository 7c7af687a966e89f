import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createLogger, redacting, scrub, scrubString } from "./log.ts";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWJ5dGVz";

describe("log scrubbing", () => {
  it("removes tokens, URL passwords and secret query values from any string", () => {
    expect(scrubString(`/c/nix-cache-info?token=${JWT}`)).toBe("/c/nix-cache-info?token=[redacted]");
    expect(scrubString(`/c/x?a=1&access_token=abc123def&force=true`)).toBe("/c/x?a=1&access_token=[redacted]&force=true");
    expect(scrubString(`failed: Bearer ${JWT}`)).toBe("failed: Bearer [redacted]");
    expect(scrubString("authorization: Basic dXNlcjpwYXNzd29yZA==")).toBe("authorization: Basic [redacted]");
    expect(scrubString("postgres://larder:p@ss:w@rd@db.internal:5432/larder")).toBe("postgres://larder:[redacted]@db.internal:5432/larder");
    expect(scrubString("token expired")).toBe("token expired");
    expect(scrubString("/c/nar/abc.nar.zst")).toBe("/c/nar/abc.nar.zst");
  });

  it("redacts by key name at any depth, keeps other fields, and turns errors into data", () => {
    const out = scrub({ req: { headers: { authorization: "x", "x-api-key": "k", host: "h" } }, err: new Error(`bad ${JWT}`), __proto__x: 1 }) as Record<string, any>;
    expect(out.req.headers).toEqual({ authorization: "[redacted]", "x-api-key": "[redacted]", host: "h" });
    expect(out.err.message).toBe("bad [redacted]");
    expect(out.err.stack).not.toContain(JWT);
  });

  it("applies to every line of a wrapped or created logger, child loggers included", () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
    const wrapped = redacting(pino({ level: "info" }, sink)).child({ reqId: "1" });
    wrapped.info({ url: `/x?token=${JWT}` }, "access denied");
    wrapped.error({ err: new Error(`db said postgres://u:secret@h/db`) }, "request failed");
    const created = createLogger({ level: "info" }, sink);
    created.info(`message with ${JWT}`);
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).not.toContain("c2lnbmF0dXJlLWJ5dGVz");
      expect(line).not.toContain("secret@");
    }
  });
});
