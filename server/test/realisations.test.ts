/**
 * Realisations with the real Nix 2.8 client (ca-derivations): `nix copy --to` of a
 * content-addressed derivation's outputs uploads them, a fresh store substitutes them back with
 * only the cache's key trusted (Nix refuses realisations without a valid signature), bad JSON
 * is refused by name, and a realisation is served only while its output path is.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expireAllObjects, gcAYearOn } from "./support/gc.ts";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");
const CA = ["--option", "extra-experimental-features", "ca-derivations"];

const CA_NIX = `{ nonce }:
let
  mk = name: script: builtins.derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" script ];
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
  };
  dep = mk "ca-dep-\${nonce}" "echo dep \${nonce} > $out";
in mk "ca-top-\${nonce}" "/bin/mkdir $out; echo \${dep} > $out/dep"
`;

describe.skipIf(!haveNix).each(BACKENDS)("realisations on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("realisations on PostgreSQL + S3");
  let larder: Larder;
  let nix: NixEnv;
  let token: string;
  let pub: string;
  let file: string;
  let nonce: string;
  let out: string;

  const auth = () => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend);
    nix = await createNixEnv();
    pub = await createTestCache(larder, "main");
    token = await larder.token({ pull: ["main"], push: ["main"] }, "ci");
    nonce = randomBytes(4).toString("hex");
    file = join(nix.dir.path, `ca-${nonce}.nix`);
    await writeFile(file, CA_NIX);
    out = (await nix.nix(["nix-build", "--store", nix.src, ...CA, file, "--argstr", "nonce", nonce, "--no-out-link"])).trim();
    await nix.setToken(larder.url, token);
  });
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("nix copy of a CA derivation's outputs round-trips, signed by the cache key", async () => {
    await nix.nix(["nix", "--store", nix.src, ...CA, "copy", "--to", `${larder.url}/_push/main`, "-f", file, "--argstr", "nonce", nonce]);
    const rows = await larder.server.ctx.db.kysely.selectFrom("realisation").selectAll().execute();
    expect(rows).toHaveLength(2);
    const top = rows.find((r) => r.out_path === out.slice("/nix/store/".length))!;
    expect(Object.values(JSON.parse(top.dependents) as Record<string, string>)).toHaveLength(1);

    const doi = await fetch(`${larder.url}/main/realisations/${top.drv_output}.doi`, { headers: auth() });
    expect(doi.status).toBe(200);
    const served = (await doi.json()) as { signatures: string[]; id: string; outPath: string };
    expect(served.id).toBe(top.drv_output);
    expect(served.signatures.some((s) => s.startsWith(`${pub.split(":")[0]}:`))).toBe(true);

    // A fresh store with ca-derivations substitutes instead of building (--max-jobs 0 forbids building).
    const dst = nix.freshStore("dst");
    const built = await nix.nix(["nix-build", "--store", dst, ...CA, file, "--argstr", "nonce", nonce, "--no-out-link", "--max-jobs", "0",
      "--option", "substituters", `${larder.url}/main`, "--option", "trusted-public-keys", pub]);
    expect(built.trim()).toBe(out);
    const info = await nix.nix(["nix", "--store", dst, ...CA, "realisation", "info", "-f", file, "--argstr", "nonce", nonce, "--json"]);
    expect(info).toContain(top.drv_output);
  });

  // Nix 2.8 registers substituted realisations without checking their signatures, so the proof
  // is Nix's own: with secret-key-files set, Nix signs the realisations it builds; Ed25519 is
  // deterministic, so a cache holding the same key must produce the very same signature.
  it.skipIf(skip)("signs a realisation exactly as Nix does with the same key", async () => {
    const key = await nix.generateKey("shared-1");
    const n = randomBytes(4).toString("hex");
    await nix.nix(["nix-build", "--store", nix.src, ...CA, "--option", "secret-key-files", key.secretFile, file, "--argstr", "nonce", n, "--no-out-link"]);
    const nixSigned = JSON.parse(await nix.nix(["nix", "--store", nix.src, ...CA, "realisation", "info", "-f", file, "--argstr", "nonce", n, "--json"])) as
      { id: string; signatures?: string[] }[];
    const withSig = nixSigned.filter((r) => (r.signatures ?? []).some((s) => s.startsWith("shared-1:")));
    expect(withSig.length).toBeGreaterThan(0);

    await createTestCache(larder, "shared", { keypair: { Keypair: (await readFile(key.secretFile, "utf8")).trim() } });
    const t = await larder.token({ pull: ["shared"], push: ["shared"] }, "shared");
    await nix.setToken(larder.url, t);
    try {
      await nix.nix(["nix", "--store", nix.src, ...CA, "copy", "--to", `${larder.url}/_push/shared`, "-f", file, "--argstr", "nonce", n]);
      for (const r of withSig) {
        const res = await fetch(`${larder.url}/shared/realisations/${r.id}.doi`, { headers: { authorization: `Bearer ${t}` } });
        expect(res.status).toBe(200);
        const served = (await res.json()) as { signatures: string[] };
        expect(served.signatures.filter((s) => s.startsWith("shared-1:"))).toEqual(r.signatures!.filter((s) => s.startsWith("shared-1:")));
      }
    } finally {
      await nix.setToken(larder.url, token);
    }
  });

  it.skipIf(skip)("validates the JSON and names what is wrong", async () => {
    const [row] = await larder.server.ctx.db.kysely.selectFrom("realisation").selectAll().execute();
    const url = `${larder.url}/main/realisations/${row!.drv_output}.doi`;
    const put = (body: string, u = url) => fetch(u, { method: "PUT", headers: { ...auth(), "content-type": "application/json" }, body });
    const good = { id: row!.drv_output, outPath: row!.out_path, signatures: [], dependentRealisations: {} };
    // Idempotent: the same upload again changes nothing.
    expect((await put(JSON.stringify(good))).status).toBe(200);
    const cases: [unknown, RegExp][] = [
      ["{", /not (valid )?JSON/],
      [{ ...good, id: undefined }, /id.{0,4} must be a string/],
      [{ ...good, outPath: "not-a-store-path" }, /store path base name/],
      [{ ...good, signatures: ["nope"] }, /is not a Nix signature/],
      [{ ...good, dependentRealisations: { "sha256:xyz!out": good.outPath } }, /derivation output id/],
      [{ ...good, extra: 1 }, /unknown realisation field .{0,2}extra/],
      [{ ...good, outPath: `${"1".repeat(32)}-other` }, /different output path/],
    ];
    for (const [body, message] of cases) {
      const res = await put(typeof body === "string" ? body : JSON.stringify(body));
      expect(res.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(await res.text()).toMatch(message);
    }
    const other = `${larder.url}/main/realisations/sha256:${"0".repeat(64)}!out.doi`;
    expect(await (await put(JSON.stringify(good), other)).text()).toMatch(/not the one in the URL/);
    expect((await fetch(`${larder.url}/main/realisations/whatever.doi`, { headers: auth() })).status).toBe(400);
    expect((await fetch(url)).status).toBe(401);
  });

  it.skipIf(skip)("is served only while its output path is, and GC removes it with the path", async () => {
    const db = larder.server.ctx.db.kysely;
    const [row] = await db.selectFrom("realisation").selectAll().where("out_path", "=", out.slice("/nix/store/".length)).execute();
    const url = `${larder.url}/main/realisations/${row!.drv_output}.doi`;
    await expireAllObjects(larder);
    await gcAYearOn(larder);
    expect(await db.selectFrom("object").select("id").execute()).toHaveLength(0);
    expect((await fetch(url, { headers: auth() })).status).toBe(404);
    expect(await db.selectFrom("realisation").select("id").execute()).toHaveLength(0);
  });
});
