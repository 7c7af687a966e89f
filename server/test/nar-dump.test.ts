/** larder's in-process NAR writer produces exactly the bytes of `nix store dump-path`. */
import { randomBytes } from "node:crypto";
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNixEnv, type NixEnv } from "./support/nix.ts";
import { requireTool } from "./support/requirements.ts";
import { narOf, physicalPath } from "../src/client/nar-dump.ts";

const haveNix = requireTool("nix", "the NAR writer is compared with Nix's own");

// Every kind of file-system object, names whose byte order differs from naive ordering, empty
// files and directories, sizes on and off the 8-byte padding boundary, an executable, symlinks;
// files on either side of the writer's 64 KiB gathering and 256 KiB read sizes.
const TREE = `{ nonce }:
builtins.derivation {
  name = "nar-kinds-\${nonce}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    /bin/mkdir -p $out/dir/nested/deeper $out/empty-dir
    echo \${nonce} > $out/a
    : > $out/empty
    printf '12345678' > $out/eight
    /usr/bin/head -c 100000 /dev/zero > $out/dir/big
    /bin/mkdir $out/sizes
    for n in 65535 65536 65537 262143 262144 262145 1048577; do /usr/bin/head -c $n /dev/urandom > $out/sizes/f$n; done
    printf '#!/bin/sh\\necho hi\\n' > $out/dir/run
    /bin/chmod +x $out/dir/run
    /bin/ln -s ../a $out/dir/link-up
    /bin/ln -s /nowhere/at/all $out/dangling
    echo x > $out/B
    echo y > $out/_
    echo z > $out/dir/nested/deeper/Z-file
    echo u > "$out/dir/ümlaut"
  '' ];
}
`;

describe.skipIf(!haveNix)("in-process NAR writer", () => {
  let nix: NixEnv;
  let path: string;
  beforeAll(async () => {
    nix = await createNixEnv();
    path = await nix.build(TREE, ["--argstr", "nonce", randomBytes(4).toString("hex")]);
  });
  afterAll(() => nix?.cleanup());

  it("matches nix store dump-path byte for byte", async () => {
    const theirs = Buffer.from(
      await new Promise<string>((resolve, reject) => {
        import("node:child_process").then(({ execFile }) =>
          execFile("nix", ["--extra-experimental-features", "nix-command", "--store", nix.src, "store", "dump-path", path], { env: { ...nix.env, PATH: process.env.PATH }, encoding: "latin1", maxBuffer: 1 << 26 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
        );
      }),
      "latin1",
    );
    const ours = await buffer(narOf(physicalPath(path, nix.src) as string));
    expect(ours.length).toBe(theirs.length);
    expect(ours.equals(theirs)).toBe(true);
  });

  it("maps --store forms to physical paths, and gives up on stores it cannot read", () => {
    expect(physicalPath("/nix/store/x", undefined)).toBe("/nix/store/x");
    expect(physicalPath("/nix/store/x", "/tmp/s")).toBe("/tmp/s/nix/store/x");
    expect(physicalPath("/nix/store/x", "local?root=/tmp/s")).toBe("/tmp/s/nix/store/x");
    expect(physicalPath("/nix/store/x", "daemon")).toBeUndefined();
    expect(physicalPath("/nix/store/x", "ssh://host")).toBeUndefined();
  });
});
