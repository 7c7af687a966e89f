/** The `.doi` a cache serves: our signature (made once per key version), then the uploader's by other keys. */
import type { CacheRow } from "./db/caches.ts";
import type { RealisationRow } from "./db/realisations.ts";
import { cacheSecretKey } from "./narinfo-view.ts";
import { realisationFingerprint, renderRealisation, type Realisation } from "./nix/realisation.ts";
import { signFingerprint } from "./nix/signing.ts";

export function realisationOf(row: Pick<RealisationRow, "drv_output" | "out_path" | "dependents" | "sigs">): Realisation {
  return {
    id: row.drv_output,
    outPath: row.out_path,
    signatures: JSON.parse(row.sigs) as string[],
    dependentRealisations: new Map(Object.entries(JSON.parse(row.dependents) as Record<string, string>)),
  };
}

export function signRealisation(cache: CacheRow, r: Realisation): string {
  return signFingerprint(cacheSecretKey(cache), realisationFingerprint(r));
}

export function realisationFor(cache: CacheRow, row: RealisationRow): { text: string; newSignature: string | undefined } {
  const r = realisationOf(row);
  const sk = cacheSecretKey(cache);
  let signature = row.signature_key_version === cache.key_version ? row.signature : null;
  let newSignature: string | undefined;
  if (signature === null) {
    signature = signRealisation(cache, r);
    newSignature = signature;
  }
  const text = renderRealisation({ ...r, signatures: [signature, ...r.signatures.filter((s) => !s.startsWith(`${sk.name}:`))] });
  return { text, newSignature };
}
