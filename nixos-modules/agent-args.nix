# The command line of `larder agent` for services.larder-agent (agent.nix), as a pure function so
# the test suite can evaluate it and run the agent with exactly these arguments. The token file
# is not here: the unit appends `--token-file %d/token` (its systemd credential).
{ larder
, cache
, environment
, serverUrl
, name
, stateDir
, allowedActivations
, profileRoots
, supervisor
, serviceEnvironment ? { }
, serviceProperties ? { }
, extraArgs ? [ ]
}:
let
  assignments = flag: attrs: builtins.concatMap (k: [ flag "${k}=${toString attrs.${k}}" ]) (builtins.attrNames attrs);
in
[ larder "agent" cache environment
  "--endpoint" serverUrl
  "--name" name
  "--state-dir" stateDir
  "--allow" (builtins.concatStringsSep "," allowedActivations)
  "--supervisor" supervisor
]
++ builtins.concatMap (r: [ "--profile-root" r ]) profileRoots
++ assignments "--service-env" serviceEnvironment
++ assignments "--service-property" serviceProperties
++ extraArgs
