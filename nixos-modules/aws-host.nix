# The EC2 host profile: what the AWS stack's user data imports. It runs services.larder on
# RDS PostgreSQL and S3. The stack hands over only non-secret values (ARNs, names, endpoints);
# the secrets are fetched from Secrets Manager at boot and every few minutes with the instance
# role and written to files under /run (the token key root-only, loaded as a systemd credential;
# the database URL readable by larder's group and read in place, so an RDS password rotation
# needs no restart). They never enter the Nix store, the user data, Terraform outputs or a
# process environment. See docs/NIXOS_MODULES.md, "EC2 host profile".
{ config, lib, pkgs, modulesPath, ... }:
let
  inherit (lib) mkOption types;

  cfg = config.services.larder.aws;

  # Option declarations by kind: a value the stack must give, or a string left null when unset.
  required = example: description: mkOption { type = types.str; inherit example description; };
  optionalStr = description: fields: mkOption ({ type = types.nullOr types.str; default = null; inherit description; } // fields);
  secretsDir = "/run/larder-aws";
  tokenCredential = {
    hs256 = "token-hs256-secret-base64";
    rs256 = "token-rs256-secret-base64";
  }.${cfg.tokenSecretKind};

  # verify-full checks the database's certificate and name against the RDS CA bundle (not in
  # Node's default roots): a packaged caFile, or the bundle AWS publishes, fetched at boot over
  # https (checked against the system's roots) and kept, so a later boot without network still has it.
  verify = cfg.database.tls == "verify-full";
  fetchedCaFile = "/var/lib/larder-aws/rds-ca-bundle.pem";
  caPath = if cfg.database.caFile != null then "${cfg.database.caFile}" else fetchedCaFile;
  sslParameters = if verify then "sslmode=verify-full&sslrootcert=${caPath}" else "sslmode=no-verify";

  fetchSecrets = pkgs.writeShellApplication {
    name = "larder-aws-secrets";
    runtimeInputs = [ pkgs.awscli2 pkgs.jq pkgs.coreutils pkgs.diffutils pkgs.findutils pkgs.curl pkgs.gnugrep config.systemd.package ];
    text = (import ./scripts.nix).awsSecrets {
      inherit (cfg) region tokenSecretArn;
      databaseSecretArn = cfg.database.masterUserSecretArn;
      inherit (cfg.database) host name;
      port = toString cfg.database.port;
      inherit sslParameters;
      caFetch = if verify && cfg.database.caFile == null then { url = cfg.database.caBundleUrl; file = fetchedCaFile; } else null;
      dir = secretsDir;
      tokenFile = "token";
      databaseUrlFile = "database-url";
      databaseGroup = config.systemd.services.larder.serviceConfig.Group;
    };
  };

  publishDiskUsage = pkgs.writeShellApplication {
    name = "larder-aws-disk-metric";
    runtimeInputs = [ pkgs.awscli2 pkgs.coreutils ];
    text = (import ./scripts.nix).awsDiskMetric {
      inherit (cfg) region;
      namespace = toString cfg.metricsNamespace;
      dimensions = "Deployment=${cfg.deployment},Mode=${cfg.mode}";
    };
  };

  # larderd writes this when the database refuses its password; a path unit fetches the secrets then.
  authFailureFile = "/var/lib/larder/database-auth-failed";

  secretConsumers = [ "larder.service" ] ++ lib.optional config.services.larder.garbageCollection.timer.enable "larder-gc.service";
in
{
  imports = [
    "${modulesPath}/virtualisation/amazon-image.nix"
    ./larder.nix
  ];

  options.services.larder.aws = {
    region = required "eu-west-1"
      "AWS region of the bucket and the secrets.";
    bucket = required "larder-nars-123456789012"
      "S3 bucket for NARs. The instance role needs s3:GetObject, PutObject, DeleteObject, ListBucket and the multipart actions on it.";
    bucketPrefix = optionalStr "Key prefix inside the bucket (lowercase path segments), to share a bucket." { };
    bucketLayout = {
      prefix = mkOption {
        type = types.strMatching "[a-z0-9._-]+(/[a-z0-9._-]+)*";
        default = "public";
        description = "Key prefix of public caches' bucket layouts (settings.bucket-layout.prefix); the CDN's origin path is /<prefix>.";
      };
      publicUrl = optionalStr "Where clients read the layouts, ending in '/' (the stack's CDN URL); null: none announced." { example = "https://nix.example.org/"; };
    };
    presignDownloads = mkOption {
      type = types.bool;
      default = false;
      description = "Answer NAR downloads with redirects to presigned S3 URLs (bytes bypass the instance; S3 egress applies).";
    };
    database = {
      host = required "larder.abcdefghijkl.eu-west-1.rds.amazonaws.com"
        "RDS endpoint address (no port).";
      port = mkOption {
        type = types.port;
        default = 5432;
        description = "RDS port.";
      };
      name = mkOption {
        type = types.str;
        default = "larder";
        description = "Database name.";
      };
      masterUserSecretArn = required "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123abcd-AbCdEf"
        "ARN of the RDS-managed master user secret (JSON with username and password).";
      tls = mkOption {
        type = types.enum [ "verify-full" "no-verify" ];
        default = "verify-full";
        description = ''
          verify-full: larder checks the database's certificate and host name against the RDS CA
          bundle (caFile, else fetched from caBundleUrl at boot). no-verify: encrypted but unchecked,
          so anyone on the path can impersonate the database; only by explicit choice.
        '';
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = lib.literalExpression ''pkgs.fetchurl { url = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"; hash = "…"; }'';
        description = "A packaged RDS CA bundle; when null (the default) it is fetched from caBundleUrl at boot.";
      };
      caBundleUrl = mkOption {
        type = types.str;
        default = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";
        description = "Where the RDS CA bundle is fetched from at boot (AWS's bundle of every region's CAs; a region's own is at …/REGION/REGION-bundle.pem).";
      };
    };
    tokenSecretArn = required "arn:aws:secretsmanager:eu-west-1:123456789012:secret:larder/token-AbCdEf"
      "ARN of the secret whose SecretString is the token signing key as bare base64.";
    tokenSecretKind = mkOption {
      type = types.enum [ "hs256" "rs256" ];
      default = "hs256";
      description = "hs256: the secret is `openssl rand -base64 64`. rs256: it is a base64-encoded PEM private key.";
    };
    domain = required "cache.example.org"
      "Public domain of the cache.";
    tls = mkOption {
      type = types.enum [ "acme" "load-balancer" "none" ];
      default = "acme";
      description = ''
        acme: nginx on this instance gets a Let's Encrypt certificate (set acmeEmail; the domain must
        resolve to the instance). load-balancer: TLS ends at a load balancer; nginx serves HTTP on 80 and
        the public URL is still https. none: plain HTTP (tests only).
      '';
    };
    acmeEmail = optionalStr "Contact address for Let's Encrypt (tls = \"acme\")." { };
    mode = mkOption {
      type = types.enum [ "monolithic" "api-server" "garbage-collector" ];
      default = "monolithic";
      description = "services.larder.mode for this instance.";
    };
    deployment = mkOption {
      type = types.str;
      default = "larder";
      description = "Name of the deployment: the Deployment dimension of the host's metrics.";
    };
    metricsNamespace = optionalStr ''
        CloudWatch namespace to publish the root file system's usage to every 5 minutes
        (RootDiskUsedPercent, dimensions Deployment and Mode; the instance role needs
        cloudwatch:PutMetricData for it). null: nothing is published.
      '' { example = "Larder"; };
    secretsRefreshInterval = mkOption {
      type = types.str;
      default = "2m";
      description = ''
        How often the secrets are fetched again (systemd time span). A rotated database password
        (RDS rotates it every 7 days by default) is used from larderd's next connection after the
        fetch, without a restart; until then new connections fail, so keep this short (each fetch is
        two Secrets Manager calls). A changed token signing key restarts larder.
      '';
    };
  };

  config = {
    assertions = [{
      assertion = cfg.tls != "acme" || cfg.acmeEmail != null;
      message = "services.larder.aws.tls = \"acme\" needs services.larder.aws.acmeEmail (or use tls = \"load-balancer\").";
    }];

    services.larder = {
      enable = true;
      inherit (cfg) mode;
      credentials = {
        ${tokenCredential} = "${secretsDir}/token";
        database-url = "${secretsDir}/database-url";
      };
      # Read in place on every new connection, not copied at start: RDS rotations need no restart.
      liveCredentials = [ "database-url" ];
      environment = { AWS_REGION = cfg.region; };
      settings = {
        # The URL, with its password, is a credential.
        database.url = null;
        database.auth-failure-file = authFailureFile;
        storage = {
          type = "s3";
          inherit (cfg) region bucket;
          prefix = cfg.bucketPrefix;
          presign-downloads = cfg.presignDownloads;
        };
        bucket-layout = {
          inherit (cfg.bucketLayout) prefix;
        } // lib.optionalAttrs (cfg.bucketLayout.publicUrl != null) { public-url = cfg.bucketLayout.publicUrl; };
        api-endpoint = "${if cfg.tls == "none" then "http" else "https"}://${cfg.domain}/";
      };
      nginx = {
        enable = true;
        hostName = cfg.domain;
        enableACME = cfg.tls == "acme";
      };
    };

    # The ALB's health checks carry the target's private address as Host, which names no virtual
    # host: this one must be nginx's default so they reach larderd (whose health endpoints answer
    # any Host; every other route keeps the allowed-hosts check).
    services.nginx.virtualHosts.${cfg.domain}.default = lib.mkIf (cfg.tls == "load-balancer") true;

    # Session Manager is the way in (no SSH port, no key pair); the instance role grants only its
    # own actions (stacks/src/constructs/host-identity.ts).
    services.amazon-ssm-agent.enable = lib.mkDefault true;

    # The store grows with every boot's rebuild; old generations and unreferenced paths go weekly,
    # and a build that finds less than 2 GiB free collects garbage until 6 GiB are.
    nix.gc = {
      automatic = lib.mkDefault true;
      dates = lib.mkDefault "weekly";
      options = lib.mkDefault "--delete-older-than 14d";
    };
    nix.settings = {
      min-free = lib.mkDefault (2 * 1024 * 1024 * 1024);
      max-free = lib.mkDefault (6 * 1024 * 1024 * 1024);
    };

    systemd.services.larder-aws-disk-metric = lib.mkIf (cfg.metricsNamespace != null) {
      description = "Publish the root file system's usage to CloudWatch";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe publishDiskUsage;
        DynamicUser = true;
        # The AWS CLI wants a home for its config and cache; DynamicUser's /tmp is private.
        Environment = [ "HOME=/tmp" ];
        NoNewPrivileges = true;
      };
    };
    systemd.timers.larder-aws-disk-metric = lib.mkIf (cfg.metricsNamespace != null) {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "2m";
        OnUnitActiveSec = "5m";
      };
    };

    security.acme = lib.mkIf (cfg.tls == "acme") {
      acceptTerms = true;
      defaults.email = cfg.acmeEmail;
    };

    systemd.services.larder-aws-secrets = {
      description = "Fetch larder's secrets from AWS Secrets Manager";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      before = secretConsumers;
      requiredBy = secretConsumers;
      # Until the secrets can be read (the token secret is filled in after the first deploy), try
      # again every 30 s instead of giving up: no reboot is needed, so none can cut a first boot short.
      unitConfig.StartLimitIntervalSec = 0;
      serviceConfig = {
        Type = "oneshot";
        Restart = "on-failure";
        RestartSec = "30s";
        ExecStart = lib.getExe fetchSecrets;
        RuntimeDirectory = "larder-aws";
        # Traversable, not listable: larder reads the database URL by name; each file has its own mode.
        RuntimeDirectoryMode = "0711";
        # The files must outlive this oneshot: larder loads them on every (re)start.
        RuntimeDirectoryPreserve = true;
        PrivateTmp = true;
        ProtectHome = true;
        NoNewPrivileges = true;
      };
    };

    # An RDS rotation is usually seen first by larderd (28P01 on a new connection): fetch at once
    # rather than at the next timer run. larderd writes the file at most every 30 s.
    systemd.paths.larder-aws-secrets-now = {
      wantedBy = [ "paths.target" ];
      pathConfig = {
        PathChanged = authFailureFile;
        Unit = "larder-aws-secrets.service";
      };
    };

    systemd.timers.larder-aws-secrets = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnUnitActiveSec = cfg.secretsRefreshInterval;
        RandomizedDelaySec = "20s";
      };
    };
  };
}
