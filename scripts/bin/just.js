#!/usr/bin/env node
// `npx just`: runs the just binary that npm installed from rust-just's Linux x64 package. The
// rust-just wrapper package is not used because its other platforms' packages are not on the
// registry this project installs from, and `npm ci` refuses a lockfile that names them.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let binary;
try {
  binary = require.resolve(`rust-just-${process.platform}-${process.arch}/bin/just`);
} catch {
  process.stderr.write(`just: no just binary for ${process.platform}-${process.arch} in node_modules; install just (https://just.systems) and run it directly\n`);
  process.exit(127);
}
const result = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" });
if (result.error) {
  process.stderr.write(`just: ${result.error.message}\n`);
  process.exit(127);
}
process.exit(result.status ?? 1);
