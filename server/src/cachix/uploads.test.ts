import { describe, expect, it } from "vitest";
import { ServerError } from "../errors.ts";
import { checkPart, PART_URL_SECONDS, signPart, type UploadRow } from "./uploads.ts";

const upload = (secret = "ab".repeat(32)): UploadRow => ({
  id: 1, cache_id: 1, nar_uuid: "0b6ad2f4-4a8e-4c57-9d11-8f1f0c6f7b5e", upload_id: "u", secret, compression: "zst",
  state: "open", completed_store_hash: null, created_by: null, created_at: 0, updated_at: 0,
});
const md5 = "1B2M2Y8AsgTpgAmY7PhCfg==";
const query = (c: { md5: string; expires: number; sig: string }) => ({ md5: c.md5, expires: String(c.expires), sig: c.sig });

describe("Cachix part URL capability", () => {
  const now = Date.UTC(2026, 11, 3, 12);
  const cap = signPart(upload(), 3, md5, now);

  it("is accepted for its upload, part and MD5 until it expires", () => {
    expect(checkPart(upload(), 3, query(cap), now + (PART_URL_SECONDS - 1) * 1000)).toEqual(cap);
  });

  it("is refused once expired, for another part, another MD5, another upload's key, or without its parameters", () => {
    const refused = (f: () => unknown, why: RegExp) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(ServerError);
        expect((e as ServerError).status).toBe(403);
        expect((e as Error).message).toMatch(why);
        return;
      }
      throw new Error("accepted");
    };
    refused(() => checkPart(upload(), 3, query(cap), now + (PART_URL_SECONDS + 1) * 1000), /expired/);
    refused(() => checkPart(upload(), 4, query(cap), now), /signature/);
    refused(() => checkPart(upload(), 3, { ...query(cap), md5: "XUFAKrxLKna5cZ2REBfFkg==" }, now), /signature/);
    refused(() => checkPart(upload("cd".repeat(32)), 3, query(cap), now), /signature/);
    refused(() => checkPart(upload(), 3, { ...query(cap), expires: String(cap.expires + 3600) }, now), /signature/);
    refused(() => checkPart(upload(), 3, { md5 }, now), /lacks/);
  });
});
