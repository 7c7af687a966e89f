/**
 * Push, then pull on the same machine, with Nix's default narinfo disk-cache TTLs and its default
 * xz compression: every command shares one XDG_CACHE_HOME, as a user's do. Nix files the narinfo
 * it uploads under the URL it pushed to and trusts that copy for 30 days; pushed to
 * /_push/<cache>, the copy never shadows the signed narinfo the cache's URL serves.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS, createTestCache, startLarder, type Larder } from "./support/larder.ts";
import { closureSummary, createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { postgresAvailable } from "./support/postgres.ts";

const haveNix = requireTool("nix", "end-to-end tests drive the real Nix client");

describe.skipIf(!haveNix).each(BACKENDS)("push then pull on one machine with Nix's default TTLs, %s", (backend) => {
  const skip = backend === "postgres-s3" && !postgresAvailable("push then pull on PostgreSQL + S3");
  let larder: Larder;
  let nix: NixEnv;
  let pub: string;
  let machine: string;

  beforeAll(async () => {
    if (skip) return;
    larder = await startLarder(backend);
    nix = await createNixEnv();
    pub = await createTestCache(larder, "main");
    await nix.setToken(larder.url, await larder.token({ pull: ["main"], push: ["main"] }, "ci"));
    machine = join(nix.dir.path, "one-machine-cache");
  });
  afterAll(async () => {
    await larder?.stop();
    await nix?.cleanup();
  });

  it.skipIf(skip)("pushed to /_push/main, pulls from /main by nix copy and by substitution", async () => {
    const top = await nix.buildClosure(`same-machine-${randomBytes(4).toString("hex")}`);
    const cacheUrl = `${larder.url}/main`;
    const pushUrl = `${larder.url}/_push/main`;
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", pushUrl, top], { cacheDir: machine });

    const dst = nix.freshStore("dst");
    await nix.nix(["nix", "copy", "--from", cacheUrl, "--to", dst, "--option", "trusted-public-keys", pub, top], { cacheDir: machine });
    const subst = nix.freshStore("subst");
    await nix.nix(["nix-store", "--store", subst, "-r", top, "--option", "substituters", cacheUrl, "--option", "trusted-public-keys", pub], { cacheDir: machine });

    const source = closureSummary(await nix.pathInfo(nix.src, top));
    expect(closureSummary(await nix.pathInfo(dst, top))).toEqual(source);
    expect(closureSummary(await nix.pathInfo(subst, top))).toEqual(source);
    await nix.nix(["nix", "--store", dst, "store", "verify", "-r", "--sigs-needed", "1", "--trusted-public-keys", pub, top]);
    // A second push from the same machine finds everything there and sends nothing new.
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", pushUrl, top], { cacheDir: machine });
  });

  it.skipIf(skip)("pushed to the cache's own URL, the same machine pulls Nix's unsigned copy (why /_push exists)", async () => {
    const top = await nix.buildClosure(`shadowed-${randomBytes(4).toString("hex")}`);
    const cacheUrl = `${larder.url}/main`;
    await nix.nix(["nix", "--store", nix.src, "copy", "--to", cacheUrl, top], { cacheDir: machine });
    await expect(
      nix.nix(["nix", "copy", "--from", cacheUrl, "--to", nix.freshStore("shadowed"), "--option", "trusted-public-keys", pub, top], { cacheDir: machine }),
    ).rejects.toThrow(/lacks a valid signature/);
    // The cache itself serves the path signed: another machine (a fresh disk cache) pulls it.
    const dst = nix.freshStore("other-machine");
    await nix.nix(["nix", "copy", "--from", cacheUrl, "--to", dst, "--option", "trusted-public-keys", pub, top]);
    expect(await nix.pathInfo(dst, top)).toHaveLength(3);
  });
});
