# The root package-lock.json is written with omit-lockfile-registry-resolved, so its entries
# carry a version and an integrity hash but no `resolved` URL. nixpkgs' fetchNpmDeps skips
# entries without a URL (its cache would come out empty and `npm ci` fails offline), so the
# package build uses this copy, with the URL npm itself would use for a registry package:
#   node_modules/@scope/name (version V) -> <registry>/@scope/name/-/name-V.tgz
# The integrity hash still pins the bytes, so nothing is trusted that the lock did not pin.
{ lock, registry ? "https://registry.npmjs.org" }:
let
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
in
lock // { packages = builtins.mapAttrs withUrl (lock.packages or { }); }
