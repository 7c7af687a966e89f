/**
 * End to end with the real Nix 2.8 client: `nix copy --to` pushes a closure with a netrc token,
 * `nix copy --from` and substitution pull it back with the cache's key as the only trusted key,
 * on SQLite + local disk and on PostgreSQL + S3 (s3rver).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { closureSummary, createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");

async function countStorageObjects(l: Larder): Promise<number> {
  let n = 0;
  for await (const _ of l.server.ctx.storage.list("nar/")) n++;
  return n;
}

describe.skipIf(!haveNix).each(BACKENDS)("real Nix against larderd on %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("PostgreSQL + S3 round trip");
  let larder: Larder;
  let nix: NixEnv;
  let pub: string;
  let cacheUrl: string;
  let token: string;

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend);
    nix = await createNixEnv();
    pub = await createTestCache(larder, "main");
    cacheUrl = `${larder.url}/main`;
    token = await larder.token({ pull: ["main"], push: ["main"] }, "ci");
  });
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  // xz, br, bzip2 and gzip uploads are recompressed into the stored zstd; zstd is kept as sent.
  // Nix 2.8 names gzip NARs ".nar" like uncompressed ones, so the server tells them apart by content.
  for (const compression of ["zstd", "xz", "none", "br", "bzip2", "gzip"]) {
    it.skipIf(skip)(`pushes with compression=${compression}, pulls with nix copy and by substitution`, async () => {
      const top = await nix.buildClosure(`${compression}-${randomBytes(4).toString("hex")}`);
      await nix.setToken(larder.url, token);
      await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${cacheUrl}?compression=${compression}`, top]);

      const dst = nix.freshStore("dst");
      await nix.nix(["nix", "copy", "--from", cacheUrl, "--to", dst, "--option", "trusted-public-keys", pub, top]);
      const subst = nix.freshStore("subst");
      await nix.nix(["nix-store", "--store", subst, "-r", top, "--option", "substituters", cacheUrl, "--option", "trusted-public-keys", pub]);

      const source = closureSummary(await nix.pathInfo(nix.src, top));
      expect(source).toHaveLength(3);
      expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(source);
      expect(closureSummary(await nix.pathInfo(subst, top))).toEqual(source);
      // Every path arrived signed by the cache's key and verifies against it alone.
      await nix.nix(["nix", "--store", dst, "store", "verify", "-r", "--sigs-needed", "1", "--trusted-public-keys", pub, top]);
    });
  }

  it.skipIf(skip)("refuses a pull signed by a key the client does not trust", async () => {
    const top = await nix.buildClosure(`untrusted-${randomBytes(4).toString("hex")}`);
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${cacheUrl}?compression=zstd`, top]);
    const other = await nix.generateKey("other-1");
    await expect(
      nix.nix(["nix", "copy", "--from", cacheUrl, "--to", nix.freshStore("neg"), "--option", "trusted-public-keys", other.publicKey, top]),
    ).rejects.toThrow(/lacks a valid signature/);
  });

  it.skipIf(skip)("keeps a private cache private: no token, or a token for another cache, can neither push nor pull", async () => {
    const top = await nix.buildClosure(`private-${randomBytes(4).toString("hex")}`);
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${cacheUrl}?compression=zstd`, top]);
    const other = await larder.token({ pull: ["other"], push: ["other"] }, "other");
    for (const t of [undefined, other]) {
      await nix.setToken(larder.url, t);
      await expect(nix.nix(["nix", "copy", "--from", cacheUrl, "--to", nix.freshStore("nope"), "--option", "trusted-public-keys", pub, top])).rejects.toThrow();
      const fresh = await nix.buildClosure(`private-push-${randomBytes(4).toString("hex")}`);
      await expect(nix.nix(["nix", "--store", nix.src, "copy", "--to", `${cacheUrl}?compression=zstd`, fresh])).rejects.toThrow(/does not appear to be a binary cache|HTTP error 401/);
    }
    const res = await fetch(`${cacheUrl}/nix-cache-info`);
    expect(res.status).toBe(401);
  });

  it.skipIf(skip)("serves a public cache anonymously but refuses anonymous pushes", async () => {
    const pubKey = await createTestCache(larder, "public", { isPublic: true });
    const url = `${larder.url}/public`;
    const top = await nix.buildClosure(`public-${randomBytes(4).toString("hex")}`);
    await nix.setToken(larder.url, await larder.token({ push: ["public"], pull: ["public"] }));
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${url}?compression=zstd`, top]);
    await nix.setToken(larder.url, undefined);
    const dst = nix.freshStore("anon");
    await nix.nix(["nix", "copy", "--from", url, "--to", dst, "--option", "trusted-public-keys", pubKey, top]);
    expect(await nix.pathInfo(dst, top)).toHaveLength(3);
    const fresh = await nix.buildClosure(`anon-push-${randomBytes(4).toString("hex")}`);
    await expect(nix.nix(["nix", "--store", nix.src, "copy", "--to", `${url}?compression=zstd`, fresh])).rejects.toThrow(/HTTP error 401.*no token sent/s);
  });

  it.skipIf(skip)("stores a NAR once when the same closure goes to two caches", async () => {
    await createTestCache(larder, "twin-a");
    await createTestCache(larder, "twin-b");
    const before = await countStorageObjects(larder);
    const top = await nix.buildClosure(`twin-${randomBytes(4).toString("hex")}`);
    await nix.setToken(larder.url, await larder.token({ push: ["twin-*"], pull: ["twin-*"] }));
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/twin-a?compression=zstd`, top]);
    expect(await countStorageObjects(larder)).toBe(before + 3);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${larder.url}/twin-b?compression=xz`, top]);
    expect(await countStorageObjects(larder)).toBe(before + 3);
    const rows = await larder.server.ctx.db.kysely.selectFrom("object").innerJoin("cache", "cache.id", "object.cache_id").select(["cache.name", "object.nar_id"]).where("cache.name", "in", ["twin-a", "twin-b"]).execute();
    expect(rows).toHaveLength(6);
    expect(new Set(rows.map((r) => r.nar_id)).size).toBe(3);
  });

  it.skipIf(skip)("serves every path signed by the same key after a restart", async () => {
    const top = await nix.buildClosure(`restart-${randomBytes(4).toString("hex")}`);
    await nix.setToken(larder.url, token);
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", `${cacheUrl}?compression=zstd`, top]);
    await larder.restart();
    const dst = nix.freshStore("after-restart");
    await nix.nix(["nix", "copy", "--from", cacheUrl, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(closureSummary(await nix.pathInfo(nix.src, top)));
  });
});
