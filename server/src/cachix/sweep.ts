/**
 * GC of Cachix uploads: an upload untouched for the grace period (never completed, or completed
 * and kept only to answer retries) goes, with its parts; part objects whose upload is gone (a
 * crash between deleting the row and the parts, a destroyed cache) go too. A part object only
 * exists after its upload's row, so a part without a row is certainly nobody's.
 */
import type { Logger } from "pino";
import type { Db } from "../db/connect.ts";
import type { Storage } from "../storage/types.ts";
import { partsPrefix, uploadOfPartKey } from "./uploads.ts";

const COMPLETING_GRACE_FACTOR = 4;

export async function sweepCachixUploads(d: { db: Db; storage: Storage; log: Logger; gc: { graceSeconds: number } }, now = Date.now()): Promise<number> {
  const grace = d.gc.graceSeconds * 1000;
  // "completing" too, after longer (a completion reads the whole NAR, which for a huge one takes
  // a while): a process killed mid-completion leaves it so, and the client gave up long ago.
  const expired = await d.db.kysely
    .deleteFrom("cachix_upload")
    .where((eb) =>
      eb.or([
        eb.and([eb("state", "!=", "completing"), eb("updated_at", "<", now - grace)]),
        eb("updated_at", "<", now - COMPLETING_GRACE_FACTOR * grace),
      ]),
    )
    .returning("nar_uuid")
    .execute();
  const byUpload = new Map<string, string[]>();
  for await (const o of d.storage.list(partsPrefix())) {
    const uuid = uploadOfPartKey(o.key);
    if (uuid === undefined) continue;
    let keys = byUpload.get(uuid);
    if (!keys) byUpload.set(uuid, (keys = []));
    keys.push(o.key);
  }
  const uuids = [...byUpload.keys()];
  const live = new Set<string>();
  for (let i = 0; i < uuids.length; i += 500) {
    const rows = await d.db.kysely.selectFrom("cachix_upload").select("nar_uuid").where("nar_uuid", "in", uuids.slice(i, i + 500)).execute();
    for (const r of rows) live.add(r.nar_uuid);
  }
  let parts = 0;
  for (const [uuid, keys] of byUpload) {
    if (live.has(uuid)) continue;
    for (const k of keys) {
      await d.storage.delete(k);
      parts++;
    }
  }
  if (expired.length > 0 || parts > 0) d.log.info({ uploads: expired.length, parts }, `gc: dropped ${expired.length} stale Cachix uploads and ${parts} part objects`);
  return expired.length;
}
