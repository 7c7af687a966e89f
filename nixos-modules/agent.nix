# services.larder-agent: a larder deploy agent on NixOS (`larder agent`, docs/DEPLOY.md).
#
# The agent long-polls the server for its environment's desired state (outgoing HTTPS only, no
# inbound port), fetches closures from the cache trusting only the cache's key, and switches this
# host. Its token is a systemd credential (LoadCredential), never in the store or the environment.
#
# It runs as root when it may switch the system (nix-env on /nix/var/nix/profiles/system and
# switch-to-configuration need root) or run services under systemd (systemd-run of system units
# needs root); with only `profile` activations it runs as its own user, which then needs its
# profiles under a directory it owns (profileRoots). The unit is not restarted by a switch
# (restartIfChanged = false): the switch it performs itself must not kill it half-way; a new
# agent version takes effect at the next reboot or `systemctl restart larder-agent`.
{ config, lib, pkgs, utils, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;

  cfg = config.services.larder-agent;
  helpers = import ./settings-lib.nix;
  stateDir = "/var/lib/larder-agent";
  needsRoot = lib.elem "system" cfg.allowedActivations || (lib.elem "service" cfg.allowedActivations && cfg.supervisor == "systemd");
  user = if needsRoot then "root" else "larder-agent";

  args = import ./agent-args.nix {
    larder = lib.getExe' cfg.package "larder";
    inherit (cfg) cache environment serverUrl name allowedActivations profileRoots supervisor serviceEnvironment serviceProperties extraArgs;
    inherit stateDir;
  };
in
{
  options.services.larder-agent = {
    enable = mkEnableOption "the larder deploy agent";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { } (this repository's larder)";
      description = "The larder package (providing the `larder` client).";
    };

    serverUrl = mkOption {
      type = types.strMatching "https?://.+";
      example = "https://cache.example.com/";
      description = "The larder server's base URL (as for `larder login`).";
    };

    cache = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9_+-]{0,49}";
      example = "main";
      description = "The cache whose deployments this host follows.";
    };

    environment = mkOption {
      type = types.strMatching "[a-z0-9][a-z0-9_-]{0,49}";
      example = "prod";
      description = "The deploy environment this host belongs to.";
    };

    name = mkOption {
      type = types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}";
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = "This host's agent name (unique in the environment).";
    };

    tokenFile = mkOption {
      # A string, not a path: a path literal (./token) would be copied into the world-readable store.
      type = types.str;
      example = "/run/secrets/larder-agent-token";
      description = ''
        A file holding the agent token of this host's group (`make-token --agent CACHE
        --agent-group GROUP`, plus `--pull CACHE` for a private cache). Loaded as a systemd
        credential; it never enters the store.
      '';
    };

    substituter = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://cache.example.com/main";
        description = ''
          The cache's binary-cache URL (`larder cache info` shows it). When set, Nix trusts it as
          a substituter with `publicKey`, so the agent can fetch through the daemon even when it
          does not run as root.
        '';
      };
      publicKey = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "main:Wx1…=";
        description = "The cache's public key (`larder cache info`).";
      };
    };

    allowedActivations = mkOption {
      type = types.listOf (types.enum [ "system" "profile" "service" ]);
      default = [ "system" "profile" "service" ];
      description = "The activation kinds this host accepts; a deployment asking for another fails on this host without touching it.";
    };

    profileRoots = mkOption {
      type = types.listOf types.str;
      default = [ "/nix/var/nix/profiles" ];
      description = "Directories under which `profile` activations may set profiles.";
    };

    supervisor = mkOption {
      type = types.enum [ "systemd" "process" ];
      default = "systemd";
      description = ''
        What runs `service` activations: transient systemd units `larder-service-<unit>`
        (hosts), or the agent's process supervisor (containers without systemd; nothing restarts
        a crashed service there).
      '';
    };

    serviceEnvironment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { PORT = "4000"; };
      description = "Environment of `service` activations' bin/serve, their migrations and command health checks. Not for secrets (it is in the store).";
    };

    serviceProperties = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { DynamicUser = "yes"; StateDirectory = "app"; };
      description = "systemd unit properties of `service` activations (`systemd-run --property`).";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "More arguments to `larder agent`.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/" cfg.tokenFile && !(helpers.isStorePath builtins.storeDir cfg.tokenFile);
        message = "services.larder-agent.tokenFile: ${cfg.tokenFile} must be an absolute path outside the Nix store, which every user can read (e.g. agenix or sops-nix, or a root-only file under /run or /var/lib).";
      }
      {
        assertion = (cfg.substituter.url == null) == (cfg.substituter.publicKey == null);
        message = "services.larder-agent.substituter: give both url and publicKey, or neither.";
      }
    ];

    nix.settings = mkIf (cfg.substituter.url != null) {
      trusted-substituters = [ cfg.substituter.url ];
      trusted-public-keys = [ cfg.substituter.publicKey ];
    };

    users.users = mkIf (!needsRoot) {
      larder-agent = { isSystemUser = true; group = "larder-agent"; home = stateDir; };
    };
    users.groups = mkIf (!needsRoot) { larder-agent = { }; };

    systemd.services.larder-agent = {
      description = "larder deploy agent (${cfg.cache}/${cfg.environment})";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "nix-daemon.service" ];
      # It performs switches itself: a switch must not stop it half-way (see the top).
      restartIfChanged = false;
      path = [ config.nix.package config.systemd.package ];
      environment.XDG_CACHE_HOME = "/var/cache/larder-agent";
      serviceConfig = {
        User = user;
        ExecStart = "${utils.escapeSystemdExecArgs args} --token-file %d/token";
        LoadCredential = [ "token:${cfg.tokenFile}" ];
        StateDirectory = "larder-agent";
        StateDirectoryMode = "0700";
        CacheDirectory = "larder-agent";
        Restart = "always";
        RestartSec = 5;
        # SIGTERM ends the poll at once; a step under way (a switch) gets time to finish.
        TimeoutStopSec = 300;
        KillMode = "mixed";
      };
    };
  };
}
