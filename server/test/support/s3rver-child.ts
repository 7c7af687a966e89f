// Runs s3rver in its own process so its memory, event loop and logs stay out of the test worker.
// argv: <data directory> <bucket>. Prints {"port":N} once listening; exits when stdin closes (parent gone).
import { createRequire } from "node:module";

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (opts: Record<string, unknown>) => S3rverInstance;

const S3rver = createRequire(import.meta.url)("s3rver") as S3rverClass;
const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  process.stderr.write("usage: s3rver-child.ts <directory> <bucket>\n");
  process.exit(2);
}

const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  directory,
  silent: true,
  configureBuckets: [{ name: bucket, configs: [] }],
});
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.stdin.on("end", shutdown).on("close", shutdown).resume();
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
