/**
 * Reads a cache's bucket layout the way Nix does (plain HTTP GETs against the bucket's endpoint)
 * and checks the bucket's invariant 1: every narinfo's NAR is there with the narinfo's FileSize,
 * every reference's narinfo is there, every realisation's output narinfo is there.
 */
import { parseNarInfo } from "../../src/nix/narinfo.ts";
import type { LayoutTarget } from "../../src/bucket/target.ts";

export interface LayoutView {
  keys: Set<string>;
  /** Store-path hashes with a narinfo. */
  narinfos: string[];
  problems: string[];
}

/** `httpBase` is the layout's URL, e.g. http://127.0.0.1:PORT/BUCKET/public/main (no trailing '/'). */
export async function readLayout(target: LayoutTarget, prefix: string, httpBase: string): Promise<LayoutView> {
  const keys = new Set<string>();
  for await (const k of target.list(prefix)) keys.add(k.slice(prefix.length));
  const problems: string[] = [];
  const narinfos: string[] = [];
  for (const k of keys) {
    if (k.endsWith(".narinfo")) {
      const hash = k.slice(0, -".narinfo".length);
      const res = await fetch(`${httpBase}/${k}`);
      // Deleted between the listing and the GET: a concurrent removal, not a broken layout.
      if (res.status === 404) continue;
      const info = parseNarInfo(await res.text());
      narinfos.push(hash);
      const nar = await fetch(`${httpBase}/${info.url}`, { method: "HEAD" });
      if (nar.status !== 200) problems.push(`${k}: its NAR ${info.url} is missing (${nar.status})`);
      else if (Number(nar.headers.get("content-length")) !== info.fileSize) problems.push(`${k}: ${info.url} has ${nar.headers.get("content-length")} bytes, FileSize says ${info.fileSize}`);
      for (const r of info.references) {
        const h = r.slice(0, 32);
        if (h !== hash && !keys.has(`${h}.narinfo`)) problems.push(`${k}: reference ${r} has no narinfo`);
      }
    } else if (k.startsWith("realisations/")) {
      const res = await fetch(`${httpBase}/${encodeURI(k)}`);
      if (res.status === 404) continue;
      const doi = (await res.json()) as { outPath: string };
      if (!keys.has(`${doi.outPath.slice(0, 32)}.narinfo`)) problems.push(`${k}: its output ${doi.outPath} has no narinfo`);
    }
  }
  if (narinfos.length > 0 && !keys.has("nix-cache-info")) problems.push("narinfos without nix-cache-info");
  return { keys, narinfos: narinfos.sort(), problems };
}
