# The package build's view of package.json and package-lock.json (pure: builtins only, so the
# test suite evaluates exactly this with plain `nix-instantiate --eval`).
#
# 1. The root package's optionalDependencies are the developers' prebuilt toolchain (Node 24 and
#    just, one package per platform). The build uses nixpkgs' nodejs_24 instead: a prebuilt Node
#    cannot run in the sandbox (foreign dynamic loader) and would shadow nodejs_24 on npm's
#    script PATH. They are dropped from both files, which keeps the two in sync for npm.
# 2. Workspace links (node_modules/@larder/*) are dropped: importNpmLock would turn each into a
#    copy of the workspace from the store; npm links the workspaces itself from package.json.
# 3. The lock is written with omit-lockfile-registry-resolved, so its entries carry a version and
#    an integrity hash but no `resolved` URL, and importNpmLock fetches only entries with one.
#    Each registry entry gets the URL npm itself would use:
#      node_modules/@scope/name (version V) -> <registry>/@scope/name/-/name-V.tgz
#    The integrity hash still pins the bytes, so nothing is trusted that the lock did not pin.
{ lock, package, registry ? "https://registry.npmjs.org" }:
let
  toolchain = builtins.attrNames (package.optionalDependencies or { });

  # The installed name is after the last node_modules/; an alias (npm:real@1) records the
  # real name in `name`.
  packageName = key: entry:
    entry.name or (builtins.head (builtins.match ".*node_modules/(.*)" key));

  fileBase = name: builtins.elemAt (builtins.match "(@[^/]+/)?([^/]+)" name) 1;

  fromRegistry = key: entry:
    builtins.match ".*node_modules/.*" key != null
    && !(entry ? resolved)
    && !(entry.link or false)
    && !(entry.inBundle or false)
    && entry ? version
    && entry ? integrity;

  withUrl = key: entry:
    if fromRegistry key entry then
      let name = packageName key entry;
      in entry // { resolved = "${registry}/${name}/-/${fileBase name}-${entry.version}.tgz"; }
    else entry;

  dropped = key: entry:
    builtins.elem key (map (n: "node_modules/${n}") toolchain)
    || (entry.link or false && builtins.match "node_modules/.*" key != null);

  packages = lock.packages or { };
  kept = builtins.removeAttrs packages (builtins.filter (k: dropped k packages.${k}) (builtins.attrNames packages));
  withoutToolchain = deps: builtins.removeAttrs deps toolchain;
  root = kept."" or { };
in
{
  inherit toolchain;

  package = builtins.removeAttrs package [ "optionalDependencies" ];

  lock = lock // {
    packages = builtins.mapAttrs withUrl kept // {
      "" = builtins.removeAttrs root [ "optionalDependencies" ]
        // (if root ? dependencies then { dependencies = withoutToolchain root.dependencies; } else { });
    };
  };
}
