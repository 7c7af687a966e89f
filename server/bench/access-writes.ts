/**
 * What a first read of a path costs the database, without HTTP: `findObject` (the narinfo lookup)
 * and the access-time write the tracker flushes for it (`touchObjectIds`), per path, on a cache
 * synthesized through larder's database layer, for hits arriving in random order.
 *
 *   cd server && node bench/access-writes.ts [--objects 100000] [--reads 30000] [--rounds 3] [--postgres]
 *
 * One JSON line on stdout: µs per lookup and per written access time, each round.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openDb } from "../src/db/connect.ts";
import { findObject } from "../src/db/objects.ts";
import { ACCESS_GRANULARITY_MS, touchObjectIds } from "../src/db/access.ts";
import { createSynthCache, synthesizeCache } from "./synth.ts";
import { startPostgres, type PostgresHandle } from "../test/support/postgres-cluster.ts";
import { machine } from "./report.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "100000" },
    reads: { type: "string", default: "30000" },
    rounds: { type: "string", default: "3" },
    postgres: { type: "boolean", default: false },
  },
  strict: true,
});
const objects = Number(values.objects);
const reads = Number(values.reads);
const work = await mkdtemp(join(tmpdir(), "larder-access-"));
let pg: PostgresHandle | undefined;
try {
  if (values.postgres) pg = await startPostgres();
  const db = await openDb(pg ? await pg.createDatabase() : `sqlite://${join(work, "larder.db")}`);
  try {
    await db.migrate();
    const cacheId = await createSynthCache(db, "big", true, null);
    const { hashes } = await synthesizeCache(db, { cacheId, objects, closureSize: 100, expiredShare: 0, now: Date.now() });
    const rounds: { lookup_us: number; access_write_us: number }[] = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      const asked = hashes.map((h) => [Math.random(), h] as const).sort((a, b) => a[0] - b[0]).slice(0, reads).map(([, h]) => h);
      let t = performance.now();
      const ids: number[] = [];
      for (const h of asked) ids.push((await findObject(db, cacheId, h))!.object.id);
      const lookup = ((performance.now() - t) * 1000) / asked.length;
      // Each round later than the granularity, so every row is written.
      const now = Date.now() + (round + 1) * 2 * ACCESS_GRANULARITY_MS;
      t = performance.now();
      await touchObjectIds(db, ids, now);
      const write = ((performance.now() - t) * 1000) / ids.length;
      process.stderr.write(`access-writes: round ${round}: lookup ${lookup.toFixed(1)} µs, access write ${write.toFixed(1)} µs per path\n`);
      rounds.push({ lookup_us: Number(lookup.toFixed(1)), access_write_us: Number(write.toFixed(1)) });
    }
    process.stdout.write(`${JSON.stringify({ objects, reads, backend: db.dialect, machine: machine(), rounds })}\n`);
  } finally {
    await db.close();
  }
} finally {
  await pg?.stop();
  await rm(work, { recursive: true, force: true });
}
