# What a good configuration must produce, as NixOS assertions (a failed one stops evaluation with
# its message, so eval-check.sh reports it):
#   import ../expect.nix ({ lib, admin }: [ { what = "…"; ok = config: bool; } … ])
# admin: config -> the text of the larderd-admin the module installs.
mkChecks: { config, lib, ... }:
let
  admin = c: (lib.findFirst (p: (p.name or "") == "larderd-admin") { text = ""; } c.environment.systemPackages).text;
in
{
  assertions = map (c: { assertion = c.ok config; message = "eval-check expectation failed: ${c.what}"; }) (mkChecks { inherit lib admin; });
}
