import { NixFormatError } from "./errors.ts";
import { formatNix32, type Sha256 } from "./hash.ts";
import { parseBaseName, parseStorePath } from "./store-path.ts";

/**
 * The message a narinfo `Sig:` signs: `1;<store path>;sha256:<nix32>;<nar size>;<refs>`, refs
 * being full store paths joined by commas, in the order given.
 *
 * Nix keeps references in a set ordered by base name (hash first), so the fingerprints it signs
 * and checks always list them sorted by base name; the narinfos it writes list them in the same
 * order. Pass references in that order (parseNarInfo returns them sorted) or signatures made here
 * will not verify in Nix.
 */
export function fingerprint(
  storePath: string,
  narHash: Sha256,
  narSize: number,
  references: readonly string[],
): string {
  const storeDir = storePath.slice(0, storePath.lastIndexOf("/"));
  parseStorePath(storePath, storeDir);
  if (!Number.isSafeInteger(narSize) || narSize <= 0) {
    throw new NixFormatError(`NAR size must be a positive integer, got ${narSize}`);
  }
  const refs = references.map((r) => {
    parseBaseName(r);
    return `${storeDir}/${r}`;
  });
  return `1;${storePath};${formatNix32(narHash)};${narSize};${refs.join(",")}`;
}
