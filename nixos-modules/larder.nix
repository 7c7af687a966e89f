# services.larder: the larder Nix binary cache server on NixOS.
#
# settings follow RFC 42: a freeform TOML table (any key the server knows) with typed options
# for the keys that matter, declared from ./defaults.nix so the test suite can prove each one is
# a key larderd accepts. Secrets never go into settings (the rendered file is in the
# world-readable store) nor into the environment: they are systemd credentials
# (LoadCredential), which server.toml names by their path relative to $CREDENTIALS_DIRECTORY,
# and an assertion refuses them in settings.
{ config, lib, pkgs, utils, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge mkDefault types literalExpression;

  cfg = config.services.larder;
  stateDir = "/var/lib/larder";
  user = "larder";

  defaults = import ./defaults.nix { inherit stateDir; };
  helpers = import ./settings-lib.nix;
  scripts = import ./scripts.nix;
  format = pkgs.formats.toml { };

  # Typed options for the entries of defaults.nix, nested by key path.
  optionType = o: {
    str = types.str;
    bool = types.bool;
    int = types.int;
    listOfStr = types.listOf types.str;
    enum = types.enum (o.values or [ ]);
    duration = types.strMatching "[0-9]+ *[A-Za-z]+( *[0-9]+ *[A-Za-z]+)*";
  }.${o.type};

  # Storage keys belong to one backend: they stay null (left out) unless that backend is
  # selected, and config below gives the selected backend's keys their defaults.
  declare = o: lib.setAttrByPath o.path (mkOption {
    type = if o.nullable or false || o ? variant then types.nullOr (optionType o) else optionType o;
    default = if o ? variant then null else o.default;
    example = o.example;
    description = o.description;
  });

  # Nested submodules, each freeform, so unknown-to-the-module keys (chunking, …) still pass
  # through to the server, which rejects the ones it does not know at check-config time.
  settingsOptions = lib.foldl' lib.recursiveUpdate { } (map declare defaults.options);
  toSubmodules = attrs: lib.mapAttrs
    (_: v:
      if lib.isOption v then v
      else mkOption {
        default = { };
        type = types.submodule { freeformType = format.type; options = toSubmodules v; };
      })
    attrs;

  # TOML has no null: unset optional keys are left out of the file.
  dropNulls = v:
    if builtins.isAttrs v then lib.mapAttrs (_: dropNulls) (lib.filterAttrs (_: x: x != null) v)
    else v;
  renderedSettings = dropNulls cfg.settings;

  configFile = format.generate "larder-server.toml" renderedSettings;
  # What the build-time check reads: the same, but with live credentials named like the copied
  # ones (relative to $CREDENTIALS_DIRECTORY), since their real files exist only on the host.
  checkFile = if liveNames == [ ] then configFile else format.generate "larder-server-check.toml"
    (lib.foldl' (acc: name: lib.recursiveUpdate acc (lib.setAttrByPath secretsByName.${name}.path name)) renderedSettings liveNames);

  secretsByName = lib.listToAttrs (map (c: lib.nameValuePair c.name c) defaults.secrets);
  credentialNames = builtins.filter (name: cfg.credentials.${name} != null) (builtins.attrNames secretsByName);
  liveNames = builtins.filter (name: cfg.credentials.${name} != null) cfg.liveCredentials;
  copiedNames = builtins.filter (name: !(lib.elem name cfg.liveCredentials)) credentialNames;
  liveSecretNames = map (c: c.name) (builtins.filter (c: c.live or false) defaults.secrets);
  hasTokenCredential = lib.any (name: secretsByName.${name}.token) credentialNames;

  # The config is checked at build time by the server itself (scripts.nix, configCheck).
  checkedConfig = pkgs.runCommand "larder-server-checked.toml" { } (scripts.configCheck {
    larderd = lib.getExe' cfg.package "larderd";
    inherit configFile checkFile;
    credentials = map (name: { inherit name; inherit (secretsByName.${name}) dummy; }) credentialNames;
    needsToken = !hasTokenCredential;
    needsDatabaseUrl = renderedSettings.database.url or null == null && cfg.credentials.database-url == null;
  });

  serviceEnvironment = { NODE_ENV = "production"; } // cfg.environment;

  # What every unit running larderd shares: identity, secrets, sandbox.
  commonServiceConfig = {
    DynamicUser = cfg.dynamicUser;
    User = user;
    Group = user;
    StateDirectory = "larder";
    StateDirectoryMode = "0700";
    EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
    LoadCredential = map (name: "${name}:${cfg.credentials.${name}}") copiedNames;
    ReadWritePaths = extraWritablePaths;
    # setrlimit is filtered below, so the descriptor limit for many concurrent NARs is set here.
    LimitNOFILE = 65536;

    CapabilityBoundingSet = [ "" ];
    AmbientCapabilities = [ "" ];
    DeviceAllow = "";
    DevicePolicy = "closed";
    LockPersonality = true;
    # V8 compiles JavaScript to machine code at runtime: it needs writable+executable memory.
    MemoryDenyWriteExecute = false;
    NoNewPrivileges = true;
    PrivateDevices = true;
    PrivateTmp = true;
    PrivateUsers = true;
    ProcSubset = "pid";
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHome = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProtectSystem = "strict";
    RemoveIPC = true;
    # unix for the local PostgreSQL socket; inet for clients, S3 and the instance metadata service.
    RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
    # Node probes a few filtered calls at startup (e.g. setrlimit): fail them, do not kill.
    SystemCallErrorNumber = "EPERM";
    UMask = "0077";
  };

  storagePath = renderedSettings.storage.path or null;
  databaseUrl = renderedSettings.database.url or null;
  sqliteFile = if lib.hasPrefix "sqlite://" (toString databaseUrl)
    then builtins.head (lib.splitString "?" (lib.removePrefix "sqlite://" databaseUrl)) else null;
  outsideState = p: p != null && !(lib.hasPrefix "${stateDir}/" p) && p != stateDir;
  extraWritablePaths =
    lib.optional (outsideState storagePath) storagePath
    ++ lib.optional (sqliteFile != null && outsideState (dirOf sqliteFile)) (dirOf sqliteFile);

  localPostgres = cfg.database.createLocally || (config.services.postgresql.enable && helpers.isLocalPostgres databaseUrl);

  # Newer nixpkgs create ensureDatabases/ensureUsers in postgresql-setup.service and mark
  # "ready" with postgresql.target; older ones have only postgresql.service. Ordering after a
  # unit that does not exist is harmless, so both are named.
  postgresAfter = lib.optionals localPostgres [ "postgresql.service" "postgresql.target" ];
  postgresWants = lib.optional localPostgres "postgresql.target";
  postgresRequires = lib.optional localPostgres "postgresql.service";

  larderd = lib.getExe' cfg.package "larderd";
  runLarderd = args: utils.escapeSystemdExecArgs ([ larderd "--config" checkedConfig ] ++ args);

  # What larderd-admin's transient unit shares with the service: identity, writable paths,
  # credentials, environment file, file-system view.
  adminProperties = lib.concatLists (lib.mapAttrsToList
    (key: value:
      let render = v: if v == true then "yes" else if v == false then "no" else toString v;
      in map (v: "${key}=${render v}") (lib.toList value))
    (lib.filterAttrs (key: _: lib.elem key [
      "DynamicUser" "User" "Group" "StateDirectory" "StateDirectoryMode" "ReadWritePaths"
      "EnvironmentFile" "LoadCredential" "UMask" "ProtectSystem" "ProtectHome" "PrivateTmp"
      "PrivateDevices" "NoNewPrivileges"
    ]) commonServiceConfig));

  adminWrapper = pkgs.writeShellScriptBin "larderd-admin" (scripts.adminWrapper {
    systemdRun = "${config.systemd.package}/bin/systemd-run";
    inherit larderd stateDir;
    configFile = checkedConfig;
    properties = adminProperties;
    environment = serviceEnvironment;
  });

in
{
  options.services.larder = {
    enable = mkEnableOption "larder, a self-hosted Nix binary cache server";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { } (this repository's server)";
      description = "The larder package (providing larderd).";
    };

    mode = mkOption {
      type = types.enum [ "monolithic" "api-server" "garbage-collector" ];
      default = "monolithic";
      description = ''
        What this node runs. monolithic: API and periodic GC (one host). api-server: the API only,
        for several stateless nodes on PostgreSQL and S3. garbage-collector: periodic GC only, on
        exactly one node of such a cluster.
      '';
    };

    settings = mkOption {
      default = { };
      description = ''
        server.toml (key names as attic's server.toml). Typed keys are listed in
        docs/NIXOS_MODULES.md; other keys pass through and are checked by
        `larderd --mode check-config` when the system is built. Never put secrets here.
      '';
      type = types.submodule {
        freeformType = format.type;
        options = toSubmodules settingsOptions;
      };
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { AWS_REGION = "eu-west-1"; NODE_EXTRA_CA_CERTS = "/etc/ssl/rds-global-bundle.pem"; };
      description = "Non-secret environment variables for larderd in every unit and in larderd-admin (the values are in the Nix store).";
    };

    credentials = lib.genAttrs (map (c: c.name) defaults.secrets) (name: mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/run/agenix/larder-${name}";
      description = ''
        Absolute path of a file outside the Nix store holding the secret `${name}` (it may be
        root-only). The units load it as a systemd credential (LoadCredential) and server.toml
        sets `${lib.concatStringsSep "." secretsByName.${name}.path} = "${name}"`, a path relative
        to $CREDENTIALS_DIRECTORY: the value is never in the store or the environment.
      '';
    });

    environmentFile = mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/run/agenix/larder.env";
      description = ''
        Absolute path of an environment file read by systemd (as root, before the service starts),
        outside the Nix store, for what is not a credential, e.g. AWS_PROFILE. Secrets belong in
        `credentials`: values in an environment file end up in the process environment.
      '';
    };

    liveCredentials = mkOption {
      type = types.listOf (types.enum liveSecretNames);
      default = [ ];
      example = [ "database-password" ];
      description = ''
        Credentials larderd reads from their path for every new database connection instead of
        from a copy systemd takes at start (LoadCredential), so a secret that is rewritten in place
        (write a temporary file, then rename it over) is used without a restart: a rotated database
        password. Each file must be readable by the group `larder` (e.g. mode 0440, owner root,
        group larder), which needs the static user (`dynamicUser` defaults to false then). Other
        secrets are read once at start: change them and restart larder.
      '';
    };

    dynamicUser = mkOption {
      type = types.bool;
      default = extraWritablePaths == [ ] && cfg.liveCredentials == [ ];
      defaultText = literalExpression "true unless storage.path or a SQLite file is outside /var/lib/larder, or liveCredentials is set";
      description = ''
        Run as a transient DynamicUser `larder` (true), or as a static system user and group
        `larder` that the module creates (false). Directories outside /var/lib/larder (local
        storage, a SQLite file) need the static user: a dynamic user does not exist yet when
        systemd-tmpfiles creates them. The module creates those directories, owned by `larder`.
      '';
    };

    database.createLocally = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Run PostgreSQL on this host with a `larder` database and role, reached over the unix socket
        with peer authentication (no password anywhere), and start larder after it.
      '';
    };

    garbageCollection.timer = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Collect garbage from a systemd timer (larderd --mode garbage-collector-once) instead of the
          server's periodic GC; sets settings.garbage-collection.interval to "0s".
        '';
      };
      dates = mkOption {
        type = types.str;
        default = "daily";
        example = "*-*-* 03:00:00";
        description = "When the timer runs (systemd.time(7) calendar expression).";
      };
    };

    nginx = {
      enable = mkEnableOption "an nginx virtual host in front of larderd";
      hostName = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "cache.example.org";
        description = "Domain of the virtual host; also sets api-endpoint and allowed-hosts.";
      };
      enableACME = mkOption {
        type = types.bool;
        default = true;
        description = "Get a certificate from Let's Encrypt (needs security.acme.acceptTerms and defaults.email) and redirect HTTP to HTTPS.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = true;
        description = "Open TCP 80 and 443 in the firewall.";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.environmentFile != null || hasTokenCredential || helpers.hasSigningKeyFile renderedSettings;
          message = ''
            services.larder needs a token signing key outside the Nix store. Generate one with
              (umask 077; openssl rand -base64 64 | tr -d '\n' > /run/keys/larder-token)
            (or with agenix / sops-nix) and set
              services.larder.credentials.token-hs256-secret-base64 = "/run/keys/larder-token";
          '';
        }
        {
          assertion = cfg.environmentFile == null || !(helpers.isStorePath builtins.storeDir cfg.environmentFile);
          message = "services.larder.environmentFile is in the Nix store, which every user can read; keep it outside (e.g. agenix or sops-nix, or a root-only file under /var/lib or /run).";
        }
        {
          assertion = lib.all (name: !(helpers.isStorePath builtins.storeDir cfg.credentials.${name})) credentialNames;
          message = "services.larder.credentials: ${lib.concatStringsSep ", " (lib.filter (name: helpers.isStorePath builtins.storeDir cfg.credentials.${name}) credentialNames)} is a file in the Nix store, which every user can read; keep it outside (e.g. agenix or sops-nix, or a root-only file under /run or /var/lib).";
        }
        {
          assertion = !cfg.dynamicUser || extraWritablePaths == [ ];
          message = "services.larder: ${lib.concatStringsSep " and " extraWritablePaths} is outside /var/lib/larder, which a DynamicUser cannot own; leave services.larder.dynamicUser at its default (false here: a static `larder` user) or keep the data under /var/lib/larder.";
        }
        {
          assertion = !cfg.dynamicUser || cfg.liveCredentials == [ ];
          message = "services.larder.liveCredentials are read by larderd from their own files, which need a group that exists before the service starts; leave services.larder.dynamicUser at its default (false here: a static `larder` user and group).";
        }
        {
          assertion = lib.all (name: cfg.credentials.${name} != null) cfg.liveCredentials;
          message = "services.larder.liveCredentials: ${lib.concatStringsSep ", " (lib.filter (name: cfg.credentials.${name} == null) cfg.liveCredentials)} has no file; set services.larder.credentials.<name> to its path.";
        }
        {
          assertion = !cfg.nginx.enable || cfg.nginx.hostName != null;
          message = "services.larder.nginx.enable needs services.larder.nginx.hostName (the cache's domain).";
        }
        {
          assertion = !(cfg.garbageCollection.timer.enable && cfg.mode == "garbage-collector");
          message = "services.larder: garbageCollection.timer replaces mode = \"garbage-collector\"; use one of them.";
        }
      ] ++ map (message: { assertion = false; inherit message; })
        (helpers.secretsInSettings renderedSettings
          ++ helpers.secretFilesInStore builtins.storeDir (map (c: c.path) defaults.secrets) renderedSettings);

      # The defaults of the typed keys; the active storage backend's keys get theirs here.
      services.larder.settings.storage = lib.listToAttrs (lib.concatMap
        (o:
          if lib.head o.path == "storage" && o ? variant && o.default != null
          then [{
            name = lib.last o.path;
            value = mkIf (cfg.settings.storage.type == o.variant) (mkDefault o.default);
          }]
          else [ ])
        defaults.options);

      systemd.services.larder = {
        description = "larder Nix binary cache (${cfg.mode})";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ] ++ postgresWants;
        after = [ "network-online.target" ] ++ postgresAfter;
        requires = postgresRequires;
        environment = serviceEnvironment;
        serviceConfig = commonServiceConfig // {
          Type = "exec";
          ExecStart = runLarderd [ "--mode" cfg.mode ];
          Restart = "on-failure";
          RestartSec = "10s";
        };
      };

      environment.systemPackages = [ (lib.hiPrio adminWrapper) cfg.package ];

      users = mkIf (!cfg.dynamicUser) {
        users.${user} = {
          isSystemUser = true;
          group = user;
          home = stateDir;
          description = "larder Nix binary cache";
        };
        groups.${user} = { };
      };

      # Data directories outside the state directory, owned by the static user.
      systemd.tmpfiles.rules = mkIf (!cfg.dynamicUser) (map (dir: "d ${dir} 0700 ${user} ${user} - -") extraWritablePaths);
    }

    {
      # Each copied credential is named in server.toml by its path relative to
      # $CREDENTIALS_DIRECTORY; a live one by its own absolute path.
      services.larder.settings = mkMerge (map (name: lib.setAttrByPath secretsByName.${name}.path name) copiedNames
        ++ map (name: lib.setAttrByPath secretsByName.${name}.path cfg.credentials.${name}) liveNames);
    }

    (mkIf (cfg.credentials.database-url != null) {
      # A URL from a credential replaces the default SQLite URL; one set by hand as well is
      # refused by the build-time check (set only one).
      services.larder.settings.database.url = lib.mkOverride 1400 null;
    })

    (mkIf cfg.database.createLocally {
      services.postgresql = {
        enable = true;
        ensureDatabases = [ user ];
        ensureUsers = [{ name = user; ensureDBOwnership = true; }];
      };
      # Peer authentication maps the service's DynamicUser name to the role of the same name.
      services.larder.settings.database.url = mkDefault "postgresql://${user}@/${user}?host=/run/postgresql";
    })

    (mkIf cfg.garbageCollection.timer.enable {
      services.larder.settings.garbage-collection.interval = "0s";
      systemd.services.larder-gc = {
        description = "larder garbage collection (one run)";
        after = [ "network-online.target" "larder.service" ] ++ postgresAfter;
        wants = [ "network-online.target" ] ++ postgresWants;
        requires = postgresRequires;
        environment = serviceEnvironment;
        serviceConfig = commonServiceConfig // {
          Type = "oneshot";
          ExecStart = runLarderd [ "--mode" "garbage-collector-once" ];
        };
      };
      systemd.timers.larder-gc = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.garbageCollection.timer.dates;
          Persistent = true;
          RandomizedDelaySec = "15m";
        };
      };
    })

    # Without a hostName only the assertion above speaks: nothing here may touch the null.
    (mkIf (cfg.nginx.enable && cfg.nginx.hostName != null) {
      services.larder.settings = {
        api-endpoint = mkDefault "${if cfg.nginx.enableACME then "https" else "http"}://${cfg.nginx.hostName}/";
        allowed-hosts = mkDefault [ cfg.nginx.hostName ];
      };

      networking.firewall.allowedTCPPorts = mkIf cfg.nginx.openFirewall [ 80 443 ];

      services.nginx = {
        enable = true;
        recommendedTlsSettings = mkDefault true;
        virtualHosts.${cfg.nginx.hostName} = {
          enableACME = cfg.nginx.enableACME;
          forceSSL = cfg.nginx.enableACME;
          locations."/" = {
            proxyPass = helpers.proxyTarget cfg.settings.listen;
            # Off even if enabled globally: its 60 s timeouts, included here, would clash with
            # the long ones below (nginx refuses duplicate directives in one block).
            recommendedProxySettings = false;
            extraConfig = ''
              proxy_http_version 1.1;
              proxy_set_header Host $host;
              proxy_set_header X-Real-IP $remote_addr;
              proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
              proxy_set_header X-Forwarded-Proto $scheme;
              proxy_set_header X-Forwarded-Host $host;

              # Pushes are whole NARs (gigabytes): no size limit, streamed to larderd as they
              # arrive instead of spooled to nginx's disk first, and time to finish.
              client_max_body_size 0;
              proxy_request_buffering off;
              proxy_buffering off;
              proxy_connect_timeout 60s;
              proxy_send_timeout 1h;
              proxy_read_timeout 1h;
              send_timeout 1h;

              # Private caches answer per token; nothing here may be served to someone else.
              # (No proxy_cache is set; these keep it so if one is added at the http level.)
              proxy_no_cache $http_authorization;
              proxy_cache_bypass $http_authorization;
            '';
          };
        };
      };
    })
  ]);
}
