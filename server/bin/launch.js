// What both launchers share. larder's sources are TypeScript that Node 24 runs directly; an
// installed package (under node_modules, where Node will not strip types) runs the build in
// dist/ instead. Started by an older Node (a command from `npm link` run by the system's node),
// it hands over to the Node 24 that `npm ci` put into the checkout (devDependencies), so the
// linked commands work whatever `node` is first on PATH.
import { spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HANDED_OVER = "LARDER_LAUNCHER_NODE";

function projectNode(from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const node = join(dir, "node_modules", ".bin", "node");
    if (existsSync(node)) return node;
    if (dirname(dir) === dir) return undefined;
  }
}

/** Runs `built` (when it exists) or `source`, on Node 24 or newer. */
export async function launch(name, launcher, built, source) {
  const [major] = process.versions.node.split(".").map(Number);
  if (major >= 24) {
    await import(existsSync(built) ? built.href : source.href);
    return;
  }
  const self = realpathSync(fileURLToPath(launcher));
  const node = process.env[HANDED_OVER] ? undefined : projectNode(dirname(self));
  if (node === undefined) {
    process.stderr.write(
      `${name} needs Node.js 24 or newer (this is ${process.version}). In a checkout, run npm ci (it installs Node 24 into the project) and then npx ${name}; or put Node 24 first on PATH.\n`,
    );
    process.exit(1);
  }
  const child = spawn(node, [self, ...process.argv.slice(2)], { stdio: "inherit", env: { ...process.env, [HANDED_OVER]: node } });
  const forward = (signal) => child.kill(signal);
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, forward);
  child.on("exit", (code, signal) => {
    if (signal) {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.off(s, forward);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}
