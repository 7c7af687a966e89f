#!/usr/bin/env node
// Launcher: larder's sources are TypeScript that Node 24 runs directly; an installed package
// (under node_modules, where Node will not strip types) runs the build in dist/ instead.
import { existsSync } from "node:fs";

const [major] = process.versions.node.split(".").map(Number);
if (major < 24) {
  process.stderr.write(
    `larder needs Node.js 24 or newer (this is ${process.version}). Run it through npm (npx larder), which uses the Node 24 pinned in devDependencies.\n`,
  );
  process.exit(1);
}
const built = new URL("../dist/client/main.js", import.meta.url);
await import(existsSync(built) ? built.href : new URL("../src/client/main.ts", import.meta.url).href);
