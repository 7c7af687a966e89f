#!/usr/bin/env node
// `npx just`: runs the just binary npm installed from rust-just's package for this platform (an
// optional dependency, so platforms without one still install), else a `just` on PATH (the Nix
// dev shell has one). rust-just's own launcher package is not used: the registry this project
// installs from carries only its linux-x64 binary, and `npm ci` cannot lock the others.
import { spawnSync } from "node:child_process";
import { accessSync, constants, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const self = realpathSync(fileURLToPath(import.meta.url));

function fromNodeModules() {
  try {
    return require.resolve(`rust-just-${process.platform}-${process.arch}/bin/just`);
  } catch {
    return undefined;
  }
}

// node_modules/.bin/just is this file: skip it, or it would run itself forever.
function fromPath() {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "just");
    try {
      accessSync(candidate, constants.X_OK);
      if (realpathSync(candidate) !== self) return candidate;
    } catch {
      // not there or not executable
    }
  }
  return undefined;
}

const binary = fromNodeModules() ?? fromPath();
if (binary === undefined) {
  process.stderr.write(`just: no just binary for ${process.platform}-${process.arch} in node_modules and none on PATH; install just (https://just.systems, or nix develop) and run it again\n`);
  process.exit(127);
}
const result = spawnSync(binary, process.argv.slice(2), { stdio: "inherit" });
if (result.error) {
  process.stderr.write(`just: ${result.error.message}\n`);
  process.exit(127);
}
process.exit(result.status ?? 1);
