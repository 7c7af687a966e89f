/**
 * A database password with characters URLs reserve, written unencoded as people do, never shows
 * in any part: not in config errors, not in connection errors, not in check-config, not in logs.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redactUrl, redactUrlsIn } from "../src/config/database-url.ts";
import { scrubString } from "../src/log.ts";
import { runLarderd } from "./support/daemon.ts";
import { freePort } from "./support/free-port.ts";
import { makeTempDir, type TempDir } from "./support/tmp.ts";

// Each password is made of distinctive two-letter chunks joined by the characters that broke
// URL parsing and redaction; no chunk may appear in any output.
const CHUNKS = ["Zq", "Xv", "Wk", "Yj", "Pu", "Rt", "Sn"];
const PASSWORDS = ["Zq@Xv", "Zq@Xv@Wk", "Zq:Xv@Wk/Yj", "Zq/Xv@Wk#Yj?Pu", "Zq%Xv@Wk%40Yj", "Zq#Xv", "Zq?Xv@Wk&Rt=Sn", "Zq@@Xv::Wk//"];
const leaks = (text: string) => CHUNKS.filter((c) => text.includes(c));

describe("database URL passwords with unencoded specials", () => {
  it.each(PASSWORDS)("redacts %s whole, in a URL and in free text", (password) => {
    const url = `postgres://larder:${password}@db.internal:5432/larder?sslmode=verify-full`;
    const redacted = redactUrl(url);
    expect(leaks(redacted), redacted).toEqual([]);
    expect(redacted).toBe("postgres://larder:[redacted]@db.internal:5432/larder?sslmode=verify-full");
    for (const text of [`connecting to ${url} failed`, `database ${url}: ECONNREFUSED`, `"${url}"`]) {
      expect(leaks(redactUrlsIn(text)), text).toEqual([]);
      expect(leaks(scrubString(text)), text).toEqual([]);
    }
  });

  describe("larderd's own output", () => {
    let dir: TempDir;
    let closedPort: number;
    beforeAll(async () => {
      dir = await makeTempDir("url-leaks");
      closedPort = await freePort();
    });
    afterAll(() => dir?.cleanup());

    const run = async (url: string, mode: string) => {
      const file = join(dir.path, `${randomBytes(4).toString("hex")}.toml`);
      await writeFile(file, `[database]\nurl = ${JSON.stringify(url)}\n[storage]\ntype = "local"\npath = "${dir.path}/s"\n[jwt.signing]\ntoken-hs256-secret-base64 = "${Buffer.alloc(40, 9).toString("base64")}"\n`);
      return runLarderd(["--config", file, "--mode", mode]);
    };

    it("says which database failed and nothing of its password", async () => {
      for (const password of ["Zq@Xv:Wk/Yj#Pu?Rt", "Zq@Xv@Wk"]) {
        const checked = await run(`postgres://larder:${password}@127.0.0.1:${closedPort}/larder`, "check-config");
        expect(checked.code, checked.stderr).toBe(0);
        expect(leaks(checked.stdout + checked.stderr)).toEqual([]);
        const refused = await run(`postgres://larder:${password}@127.0.0.1:${closedPort}/larder`, "db-migrations");
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain(`larderd: database postgres://larder:[redacted]@127.0.0.1:${closedPort}/larder: `);
        expect(leaks(refused.stdout + refused.stderr), refused.stderr).toEqual([]);
        // A host that does not resolve: the resolver's error names the host, which must be the host.
        const unknown = await run(`postgres://larder:${password}@db.invalid/larder`, "db-migrations");
        expect(unknown.code).toBe(1);
        expect(unknown.stderr).toContain("db.invalid");
        expect(leaks(unknown.stdout + unknown.stderr), unknown.stderr).toEqual([]);
      }
      const wrongScheme = await run("mysql://larder:Zq@Xv:Wk@db/larder", "check-config");
      expect(wrongScheme.code).toBe(1);
      expect(wrongScheme.stderr).toMatch(/must start with sqlite:\/\/ or postgres:\/\//);
      expect(leaks(wrongScheme.stderr)).toEqual([]);
    }, 60_000);
  });
});
