#!/usr/bin/env node
// The CLI is TypeScript run by Node's type stripping, which needs Node 24; say so plainly
// instead of failing on the first type annotation.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(
    `larder-secrets needs Node 24 or newer (this is ${process.version}); run it through npx or npm, which use the repository's pinned Node\n`,
  );
  process.exit(1);
}
await import("../src/cli.ts");
