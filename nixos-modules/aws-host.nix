# The EC2 host profile: what the AWS stack's user data imports. It runs services.larder on
# RDS PostgreSQL and S3. The stack hands over only non-secret values (ARNs, names, endpoints);
# the secrets are fetched from Secrets Manager at boot with the instance role and written to a
# root-only environment file under /run, so they never enter the Nix store, the user data or
# Terraform outputs. See docs/NIXOS_MODULES.md, "EC2 host profile".
{ config, lib, pkgs, modulesPath, ... }:
let
  inherit (lib) mkOption types;

  cfg = config.services.larder.aws;
  envDir = "/run/larder-aws";
  envFile = "${envDir}/env";

  tokenVariable = {
    hs256 = "LARDER_SERVER_TOKEN_HS256_SECRET_BASE64";
    rs256 = "LARDER_SERVER_TOKEN_RS256_SECRET_BASE64";
  }.${cfg.tokenSecretKind};

  # verify-full needs the RDS CA bundle (not in Node's default roots); without it the link is
  # still encrypted but the server certificate is not checked.
  sslMode = if cfg.database.caFile != null then "verify-full" else "no-verify";

  fetchSecrets = pkgs.writeShellApplication {
    name = "larder-aws-secrets";
    runtimeInputs = [ pkgs.awscli2 pkgs.jq pkgs.coreutils config.systemd.package ];
    text = ''
      # Never trace: the values below are secrets.
      set +x
      umask 077

      secret() {
        local tries=0 value
        # The instance role's credentials may lag the network at boot: retry for a minute.
        until value=$(aws secretsmanager get-secret-value --region ${lib.escapeShellArg cfg.region} \
                        --secret-id "$1" --query SecretString --output text); do
          tries=$((tries + 1))
          if [ "$tries" -ge 12 ]; then
            echo "larder-aws-secrets: cannot read secret $1 with the instance role (check its IAM policy allows secretsmanager:GetSecretValue)" >&2
            return 1
          fi
          sleep 5
        done
        printf '%s' "$value"
      }

      token=$(secret ${lib.escapeShellArg cfg.tokenSecretArn})
      if ! [[ $token =~ ^[A-Za-z0-9+/=_-]+$ ]]; then
        echo "larder-aws-secrets: the token secret "${lib.escapeShellArg cfg.tokenSecretArn}" must hold a bare base64 string (openssl rand -base64 64 | tr -d '\\n')" >&2
        exit 1
      fi

      # RDS-managed master user secret: {"username": …, "password": …}. Both are URL-encoded
      # so any character RDS generates is safe in the URL and in the environment file.
      url=$(secret ${lib.escapeShellArg cfg.database.masterUserSecretArn} | jq -er \
        --arg host ${lib.escapeShellArg cfg.database.host} \
        --arg port ${toString cfg.database.port} \
        --arg name ${lib.escapeShellArg cfg.database.name} \
        --arg ssl ${sslMode} \
        '"postgresql://\((.username // error("no username")) | @uri):\((.password // error("no password")) | @uri)@\($host):\($port)/\($name | @uri)?sslmode=\($ssl)"') || {
        echo "larder-aws-secrets: the database secret "${lib.escapeShellArg cfg.database.masterUserSecretArn}" is not JSON with username and password" >&2
        exit 1
      }

      mkdir -p ${envDir}
      tmp=$(mktemp ${envDir}/env.XXXXXX)
      printf '%s=%s\nLARDER_SERVER_DATABASE_URL=%s\n' ${tokenVariable} "$token" "$url" > "$tmp"
      chmod 0400 "$tmp"

      if [ -e ${envFile} ] && cmp -s "$tmp" ${envFile}; then
        rm -f "$tmp"
        exit 0
      fi
      changed=false
      if [ -e ${envFile} ]; then changed=true; fi
      mv -f "$tmp" ${envFile}
      # A rotated secret (RDS rotates the master password, 7 days by default) only reaches the
      # server on restart; --no-block because larder.service is ordered after this unit.
      if [ "$changed" = true ]; then
        echo "larder-aws-secrets: secrets changed, restarting larder" >&2
        systemctl try-restart --no-block larder.service
      fi
    '';
  };

  secretConsumers = [ "larder.service" ] ++ lib.optional config.services.larder.garbageCollection.timer.enable "larder-gc.service";
in
{
  imports = [
    "${modulesPath}/virtualisation/amazon-image.nix"
    ./larder.nix
  ];

  options.services.larder.aws = {
    region = mkOption {
      type = types.str;
      example = "eu-west-1";
      description = "AWS region of the bucket and the secrets.";
    };
    bucket = mkOption {
      type = types.str;
      example = "larder-nars-123456789012";
      description = "S3 bucket for NARs. The instance role needs s3:GetObject, PutObject, DeleteObject, ListBucket and the multipart actions on it.";
    };
    bucketPrefix = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Key prefix inside the bucket (lowercase path segments), to share a bucket.";
    };
    presignDownloads = mkOption {
      type = types.bool;
      default = false;
      description = "Answer NAR downloads with redirects to presigned S3 URLs (bytes bypass the instance; S3 egress applies).";
    };
    database = {
      host = mkOption {
        type = types.str;
        example = "larder.abcdefghijkl.eu-west-1.rds.amazonaws.com";
        description = "RDS endpoint address (no port).";
      };
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
      masterUserSecretArn = mkOption {
        type = types.str;
        example = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123abcd-AbCdEf";
        description = "ARN of the RDS-managed master user secret (JSON with username and password).";
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = lib.literalExpression ''pkgs.fetchurl { url = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"; hash = "…"; }'';
        description = "RDS CA bundle (public). When set the server verifies the database certificate (sslmode=verify-full); otherwise the connection is encrypted but unverified (sslmode=no-verify).";
      };
    };
    tokenSecretArn = mkOption {
      type = types.str;
      example = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:larder/token-AbCdEf";
      description = "ARN of the secret whose SecretString is the token signing key as bare base64.";
    };
    tokenSecretKind = mkOption {
      type = types.enum [ "hs256" "rs256" ];
      default = "hs256";
      description = "hs256: the secret is `openssl rand -base64 64`. rs256: it is a base64-encoded PEM private key.";
    };
    domain = mkOption {
      type = types.str;
      example = "cache.example.org";
      description = "Public domain of the cache.";
    };
    tls = mkOption {
      type = types.enum [ "acme" "load-balancer" "none" ];
      default = "acme";
      description = ''
        acme: nginx on this instance gets a Let's Encrypt certificate (set acmeEmail; the domain must
        resolve to the instance). load-balancer: TLS ends at a load balancer; nginx serves HTTP on 80 and
        the public URL is still https. none: plain HTTP (tests only).
      '';
    };
    acmeEmail = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Contact address for Let's Encrypt (tls = \"acme\").";
    };
    mode = mkOption {
      type = types.enum [ "monolithic" "api-server" "garbage-collector" ];
      default = "monolithic";
      description = "services.larder.mode for this instance.";
    };
    secretsRefreshInterval = mkOption {
      type = types.str;
      default = "1h";
      description = "How often the secrets are fetched again; larder restarts when they changed (RDS rotation).";
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
      environmentFile = envFile;
      environment = { AWS_REGION = cfg.region; }
        // lib.optionalAttrs (cfg.database.caFile != null) { NODE_EXTRA_CA_CERTS = "${cfg.database.caFile}"; };
      settings = {
        # The URL, with its password, comes from the environment file.
        database.url = null;
        storage = {
          type = "s3";
          inherit (cfg) region bucket;
          prefix = cfg.bucketPrefix;
          presign-downloads = cfg.presignDownloads;
        };
        api-endpoint = "${if cfg.tls == "none" then "http" else "https"}://${cfg.domain}/";
      };
      nginx = {
        enable = true;
        hostName = cfg.domain;
        enableACME = cfg.tls == "acme";
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
      serviceConfig = {
        Type = "oneshot";
        ExecStart = lib.getExe fetchSecrets;
        RuntimeDirectory = "larder-aws";
        RuntimeDirectoryMode = "0700";
        # The file must outlive this oneshot: larder reads it on every (re)start.
        RuntimeDirectoryPreserve = true;
        PrivateTmp = true;
        ProtectHome = true;
        NoNewPrivileges = true;
      };
    };

    systemd.timers.larder-aws-secrets = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnUnitActiveSec = cfg.secretsRefreshInterval;
        RandomizedDelaySec = "5m";
      };
    };
  };
}
