# The package build's view of package.json and package-lock.json (pure: builtins only, so the
# test suite evaluates exactly this with plain `nix-instantiate --eval`).
#
# 1. Only what building `workspace` needs: its dependencies, the compiler and type declarations
#    among its and the root's devDependencies (typescript, @types/*), and everything those
#    depend on, resolved through the lock as Node resolves (nearest node_modules first). The
#    other workspaces (the CDKTF stacks and their provider bindings, the ops scripts), the test
#    and benchmark tools, and the developers' prebuilt toolchain (Node 24 and just, one package
#    per platform; the build uses nixpkgs' nodejs_24, a prebuilt Node cannot run in the sandbox)
#    are left out of the lock, of the root package.json (workspaces, devDependencies,
#    optionalDependencies) and of the workspace's package.json, so npm still finds the three in
#    sync and fetches nothing else.
# 2. Workspace links (node_modules/@larder/*) are left out too: importNpmLock would turn each into
#    a copy of the workspace from the store; npm links the workspace itself from package.json.
# 3. The lock is written with omit-lockfile-registry-resolved, so its entries carry a version and
#    an integrity hash but no `resolved` URL, and importNpmLock fetches only entries with one.
#    Each registry entry gets the URL npm itself would use:
#      node_modules/@scope/name (version V) -> <registry>/@scope/name/-/name-V.tgz
#    The integrity hash still pins the bytes, so nothing is trusted that the lock did not pin.
{ lock, package, workspace, workspacePackage, registry ? "https://registry.npmjs.org" }:
let
  toolchain = builtins.attrNames (package.optionalDependencies or { });
  packages = lock.packages or { };

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  filterAttrs = pred: set: builtins.removeAttrs set (builtins.filter (k: !(pred k)) (builtins.attrNames set));

  # What compiling the workspace needs from the devDependencies; tests and benchmarks are not built.
  buildTool = name: name == "typescript" || hasPrefix "@types/" name;
  buildDevDependencies = deps: filterAttrs buildTool deps;

  # Node's lookup from a package's location: its own node_modules, then each enclosing one.
  parentOf = key:
    let m = builtins.match "(.*)/node_modules/(@[^/]+/)?[^/]+" key;
    in if m == null then "" else builtins.head m;
  resolve = key: name:
    let candidate = (if key == "" then "" else "${key}/") + "node_modules/${name}";
    in if packages ? ${candidate} then candidate
       else if key == "" then null
       else resolve (parentOf key) name;

  # npm installs dependencies, optional ones where the platform allows, and peers unless marked
  # optional; whatever the lock does not hold (an optional one for another platform) is skipped.
  requiredPeers = entry: filterAttrs (n: !((entry.peerDependenciesMeta or { }).${n}.optional or false)) (entry.peerDependencies or { });
  dependencyNames = entry: builtins.attrNames ((entry.dependencies or { }) // (entry.optionalDependencies or { }) // requiredPeers entry);
  resolvedFrom = key: names: builtins.filter (k: k != null) (map (resolve key) names);

  workspaceEntry = packages.${workspace};
  rootEntry = packages."" or { };
  startKeys =
    resolvedFrom workspace (builtins.attrNames ((workspaceEntry.dependencies or { }) // buildDevDependencies (workspaceEntry.devDependencies or { })))
    ++ resolvedFrom "" (builtins.attrNames (buildDevDependencies (rootEntry.devDependencies or { })));
  closure = map (item: item.key) (builtins.genericClosure {
    startSet = map (key: { inherit key; }) startKeys;
    operator = item: map (key: { inherit key; }) (resolvedFrom item.key (dependencyNames packages.${item.key}));
  });
  # Bundled packages come inside their parent's tarball but are listed beside it.
  bundled = builtins.filter
    (key: packages.${key}.inBundle or false && builtins.any (parent: hasPrefix "${parent}/node_modules/" key) closure)
    (builtins.attrNames packages);
  kept = builtins.listToAttrs (map (key: { name = key; value = packages.${key}; }) (closure ++ bundled));

  packageName = key: entry:
    entry.name or (builtins.head (builtins.match ".*node_modules/(.*)" key));
  fileBase = name: builtins.elemAt (builtins.match "(@[^/]+/)?([^/]+)" name) 1;
  fromRegistry = key: entry:
    !(entry ? resolved)
    && !(entry.link or false)
    && !(entry.inBundle or false)
    && entry ? version
    && entry ? integrity;
  withUrl = key: entry:
    if fromRegistry key entry then
      let name = packageName key entry;
      in entry // { resolved = "${registry}/${name}/-/${fileBase name}-${entry.version}.tgz"; }
    else entry;

  trimPackage = p: builtins.removeAttrs p [ "optionalDependencies" "devDependencies" ]
    // (if p ? devDependencies then { devDependencies = buildDevDependencies p.devDependencies; } else { });
in
{
  inherit toolchain;

  # The lock keys kept (for the tests).
  keys = closure ++ bundled;

  package = trimPackage package // { workspaces = [ workspace ]; };

  workspacePackage = trimPackage workspacePackage;

  lock = lock // {
    packages = builtins.mapAttrs withUrl kept // {
      "" = trimPackage rootEntry // { workspaces = [ workspace ]; };
      ${workspace} = trimPackage workspaceEntry;
    };
  };
}
