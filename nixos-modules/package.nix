# larder: the server (larderd), its client (larder) and larderd-admin, built from this repository
# with buildNpmPackage on Node 24. Only the `server` workspace is compiled and installed.
#
# The npm dependencies come from nixpkgs' importNpmLock: one fixed-output fetch per lock entry,
# pinned by the lock's own integrity hash, so no hash is ever computed by hand and a lock change
# needs nothing else. npm-lock.nix prepares the lock for it: only the server's closure (no stacks,
# test or benchmark tools, no developers' toolchain), with URLs.
{ lib
, stdenv
, buildNpmPackage
, importNpmLock
, nodejs_24
, makeWrapper
, autoPatchelfHook
, writeShellScript
, xz
, bzip2
}:
let
  root = ../.;

  serverPackage = lib.importJSON (root + "/server/package.json");

  npm = import ./npm-lock.nix {
    lock = lib.importJSON (root + "/package-lock.json");
    package = lib.importJSON (root + "/package.json");
    workspace = "server";
    workspacePackage = serverPackage;
  };

  # Node's names for the architectures its prebuilt addons are published for.
  nodeArch = {
    x86_64-linux = "x64";
    aarch64-linux = "arm64";
  }.${stdenv.hostPlatform.system} or (throw "larder: no prebuilt native addons for ${stdenv.hostPlatform.system}");

  npmDeps = importNpmLock {
    inherit (npm) package;
    packageLock = npm.lock;
    inherit (serverPackage) version;
  };
in
buildNpmPackage {
  pname = "larder";
  inherit (serverPackage) version;

  # Only the server is built; npmDeps' package.json (which the config hook puts in place of the
  # root one) names no other workspace.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/package.json")
      (root + "/package-lock.json")
      (root + "/tsconfig.base.json")
      (root + "/server/package.json")
      (root + "/server/tsconfig.json")
      (root + "/server/tsconfig.build.json")
      (root + "/server/bin")
      (root + "/server/src")
    ];
  };

  # The server's package.json without the test and benchmark tools the trimmed lock leaves out,
  # or npm (offline in the sandbox) would try to fetch them.
  postPatch = ''
    cp --no-preserve=mode ${builtins.toFile "server-package.json" (builtins.toJSON npm.workspacePackage)} server/package.json
  '';

  nodejs = nodejs_24;
  # The hook installs from npmDeps' package.json and lock (store paths for every tarball) in
  # place of the source's, offline.
  inherit npmDeps;
  npmConfigHook = importNpmLock.npmConfigHook;

  npmWorkspace = "server";

  nativeBuildInputs = [ makeWrapper autoPatchelfHook ];
  # better-sqlite3 and lzma-native ship prebuilt N-API addons linked against libstdc++.
  buildInputs = [ stdenv.cc.cc.lib ];

  installPhase = ''
    runHook preInstall

    npm prune --omit=dev --no-save --workspace=server
    rm -f node_modules/@larder/*     # workspace links back into the build tree

    app=$out/lib/larder
    mkdir -p "$app" "$out/bin"
    cp -r server/bin server/dist server/package.json "$app/"
    cp -r node_modules "$app/node_modules"
    if [ -d server/node_modules ]; then cp -rT server/node_modules "$app/node_modules"; fi

    # Keep only this platform's prebuilt addons, so autoPatchelf sees no foreign binaries.
    find "$app/node_modules" -type d -name prebuilds | while read -r dir; do
      find "$dir" -mindepth 1 -maxdepth 1 ! -name 'linux-${nodeArch}*' -exec rm -rf {} +
      find "$dir" -name '*musl*' -exec rm -rf {} +
    done

    for bin in larderd larder; do
      # larderd decodes xz and bzip2 uploads with these programs (server/src/ingest/process-codec.ts).
      makeWrapper ${nodejs_24}/bin/node "$out/bin/$bin" \
        --add-flags "$app/bin/$bin.js" \
        --prefix PATH : ${lib.makeBinPath [ xz bzip2 ]} \
        --set-default NODE_ENV production
    done

    # larderd-admin SUBCOMMAND ARGS… | --mode MODE: larderd against the installed config
    # (LARDER_CONFIG, default /etc/larder/server.toml). The NixOS module installs its own
    # larderd-admin that also runs with the service's identity and secrets.
    install -m 0755 ${writeShellScript "larderd-admin" (import ./scripts.nix).packageAdmin} "$out/bin/larderd-admin"

    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    HOME=$TMPDIR $out/bin/larderd --help >/dev/null
    runHook postInstallCheck
  '';

  passthru = { inherit npmDeps; };

  meta = {
    description = "Self-hosted Nix binary cache server (larderd) and client (larder)";
    license = lib.licenses.mit;
    mainProgram = "larderd";
    platforms = [ "x86_64-linux" "aarch64-linux" ];
  };
}
