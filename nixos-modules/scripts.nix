# Every shell script the module and the EC2 host profile generate, as text (builtins only).
# The modules pass real store paths; server/test/nixos-scripts.test.ts passes stand-ins,
# runs ShellCheck on each text and runs larderd-admin's with the exact command lines the ops
# scripts send. A script belongs here, not inline in a module, so that test sees all of them.
let
  escape = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  concatMap = f: list: builtins.concatStringsSep "" (map f list);
  optional = cond: s: if cond then s else "";
in
rec {
  inherit escape;

  # The build step that checks the rendered server.toml with larderd itself. Secrets given as
  # credentials are read from $CREDENTIALS_DIRECTORY at config-parse time, so each gets a
  # stand-in of the right shape; a signing key or database URL that only the environment file
  # provides at runtime gets a throwaway one.
  #   credentials: [ { name, dummy } ]
  #   checkFile: what larderd checks, when it differs from configFile only in naming live
  #   credentials by their credential name instead of their path on the host
  configCheck = { larderd, configFile, checkFile ? configFile, credentials, needsToken, needsDatabaseUrl }: ''
    set -eu
    : "''${out:?set by the Nix builder}"
    export HOME="$TMPDIR"
    mkdir -p "$TMPDIR/credentials"
    ${concatMap (c: ''
      printf '%s' ${escape c.dummy} > "$TMPDIR/credentials/"${escape c.name}
    '') credentials}
    export CREDENTIALS_DIRECTORY="$TMPDIR/credentials"
    ${optional needsToken ''
      export LARDER_SERVER_TOKEN_HS256_SECRET_BASE64=bGFyZGVyLWJ1aWxkLXRpbWUtY2hlY2stbm90LWEtcmVhbC1zZWNyZXQtMDEyMzQ1Njc4OQ==
    ''}
    ${optional needsDatabaseUrl ''
      export LARDER_SERVER_DATABASE_URL="sqlite://$TMPDIR/check.db"
    ''}
    ${escape larderd} --config ${escape checkFile} --mode check-config
    cp ${escape configFile} "$out"
  '';

  # larderd-admin's arguments: a larderd subcommand (make-token, create-cache, …) or a one-shot
  # mode (--mode garbage-collector-once, as `just gc-once` sends it). larderd takes its own
  # options before a subcommand and a subcommand's after it, so --config goes right after the
  # subcommand's name, or first when there is none. configWord: a shell word for the file.
  adminArguments = configWord: ''
    set -eu
    if [ $# -eq 0 ]; then
      echo "usage: larderd-admin SUBCOMMAND [ARGS...] | larderd-admin --mode MODE" >&2
      echo "  e.g. larderd-admin make-token --sub alice --validity 1y --pull '*' --push '*'" >&2
      echo "       larderd-admin --mode garbage-collector-once" >&2
      exit 64
    fi
    case $1 in
      -*) set -- --config ${configWord} "$@" ;;
      *) sub=$1; shift; set -- "$sub" --config ${configWord} "$@" ;;
    esac
  '';

  # The NixOS module's larderd-admin: run by systemd-run in a transient unit with the service's
  # identity, paths, credentials and environment.
  #   properties: unit properties as "Key=value" strings; environment: { NAME = value; }
  adminWrapper = { systemdRun, larderd, configFile, stateDir, properties, environment }: adminArguments (escape configFile) + ''
    tty=
    if [ -t 0 ] && [ -t 1 ]; then tty=--pty; fi
    exec ${escape systemdRun} --quiet --pipe ''${tty:+"$tty"} --wait --collect \
      --service-type=exec --working-directory=${escape stateDir} \
      ${builtins.concatStringsSep " \\\n  " (map (p: escape "--property=${p}") properties ++ map (n: escape "--setenv=${n}=${environment.${n}}") (builtins.attrNames environment))} \
      -- ${escape larderd} "$@"
  '';

  # The package's plain larderd-admin (outside NixOS): the larderd next to it, against
  # $LARDER_CONFIG (default /etc/larder/server.toml), as the calling user.
  packageAdmin = adminArguments ''"''${LARDER_CONFIG:-/etc/larder/server.toml}"'' + ''
    exec "$(dirname "$(readlink -f "$0")")/larderd" "$@"
  '';

  # The EC2 host profile's secret fetch, run at boot and then every few minutes: each secret from
  # Secrets Manager into a file, never into an environment. The token signing key is root-only
  # and loaded as a systemd credential (a copy taken at start, so a new key restarts larder). The
  # database URL is readable by larder's group and read by larderd in place for every new
  # connection, so a rotated RDS password is used without a restart once it is fetched.
  #   dir: where the files go (traversable, not listable); tokenFile/databaseUrlFile: their names
  #   in it; databaseGroup: the group that may read the database URL
  #   sslParameters: the URL's TLS query ("sslmode=…"); caFetch: null or { url, file } for the
  #   RDS CA bundle, fetched when missing or a day old
  awsSecrets = { region, tokenSecretArn, databaseSecretArn, host, port, name, sslParameters, caFetch ? null, dir, tokenFile, databaseUrlFile, databaseGroup }: ''
    # Never trace: the values below are secrets.
    set +x
    umask 077

    secret() {
      local tries=0 value
      # The instance role's credentials may lag the network at boot: retry for a minute.
      until value=$(aws secretsmanager get-secret-value --region ${escape region} \
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

    ${optional (caFetch != null) ''
      # Public data, but it decides whom larder trusts: only over https, only if it parses as
      # certificates, and never replacing a good bundle with a failed download. Fetched when
      # missing or a day old, not on every refresh of the secrets.
      install -d -m 0755 ${escape (dirOf caFetch.file)}
      if [ ! -s ${escape caFetch.file} ] || [ -z "$(find ${escape caFetch.file} -mmin -1440)" ]; then
        if curl -fsS --retry 5 --retry-connrefused --max-time 60 -o ${escape "${caFetch.file}.new"} ${escape caFetch.url} \
            && grep -q -- '-----BEGIN CERTIFICATE-----' ${escape "${caFetch.file}.new"}; then
          chmod 0644 ${escape "${caFetch.file}.new"}
          mv -f ${escape "${caFetch.file}.new"} ${escape caFetch.file}
        else
          rm -f ${escape "${caFetch.file}.new"}
          if [ ! -s ${escape caFetch.file} ]; then
            printf '%s\n' "larder-aws-secrets: cannot fetch the RDS CA bundle from "${escape caFetch.url}"; larder cannot verify the database (database.tls = verify-full)" >&2
            exit 1
          fi
          echo "larder-aws-secrets: RDS CA bundle not refreshed; using the one from an earlier fetch" >&2
        fi
      fi
    ''}
    token=$(secret ${escape tokenSecretArn})
    if ! [[ $token =~ ^[A-Za-z0-9+/=_-]+$ ]]; then
      printf '%s\n' "larder-aws-secrets: the token secret "${escape tokenSecretArn}" must hold a bare base64 string (openssl rand -base64 64 | tr -d '\n')" >&2
      exit 1
    fi

    # RDS-managed master user secret: {"username": …, "password": …}. Both are URL-encoded
    # so any character RDS generates is safe in the URL.
    url=$(secret ${escape databaseSecretArn} | jq -er \
      --arg host ${escape host} \
      --arg port ${escape port} \
      --arg name ${escape name} \
      --arg ssl ${escape sslParameters} \
      '"postgresql://\((.username // error("no username")) | @uri):\((.password // error("no password")) | @uri)@\($host):\($port)/\($name | @uri)?\($ssl)"') || {
      printf '%s\n' "larder-aws-secrets: the database secret "${escape databaseSecretArn}" is not JSON with username and password" >&2
      exit 1
    }

    # Names are not secret: larder's user may reach a file it knows, but not list the directory.
    mkdir -p ${escape dir}
    chmod 0711 ${escape dir}
    created=false
    token_changed=false
    url_changed=false
    # Each file is replaced whole (write, then rename), so a reader never sees half of one.
    #   put NAME VALUE MODE [GROUP]: status 0 when the file is new or changed
    put() {
      local target=${escape dir}/$1 tmp
      tmp=$(mktemp ${escape dir}/.new.XXXXXX)
      printf '%s' "$2" > "$tmp"
      if [ -n "''${4:-}" ]; then chgrp "$4" "$tmp"; fi
      chmod "$3" "$tmp"
      if [ -e "$target" ] && cmp -s "$tmp" "$target"; then
        rm -f "$tmp"
        return 1
      fi
      if [ ! -e "$target" ]; then created=true; fi
      mv -f "$tmp" "$target"
    }
    if put ${escape tokenFile} "$token" 0400; then token_changed=true; fi
    if put ${escape databaseUrlFile} "$url" 0440 ${escape databaseGroup}; then url_changed=true; fi

    # The first success may come from a retry, long after larder's own start failed for want of
    # these files (e.g. the token secret got its value after the instance booted): start it now
    # (--no-block: larder.service is ordered after this unit).
    if [ "$created" = true ]; then
      systemctl start --no-block larder.service
    elif [ "$token_changed" = true ]; then
      # A credential is a copy taken when the unit starts, and the key is read once.
      echo "larder-aws-secrets: the token signing key changed, restarting larder" >&2
      systemctl try-restart --no-block larder.service
    elif [ "$url_changed" = true ]; then
      # RDS rotated the master password (7 days by default): larderd reads this file for each
      # new connection, so no restart; open connections stay valid.
      echo "larder-aws-secrets: the database password changed; larder uses it from its next connection" >&2
    fi
  '';

  # The EC2 host profile's disk metric: root file system use, to CloudWatch.
  awsDiskMetric = { region, namespace, dimensions }: ''
    # The root file system holds the Nix store and larder's upload spool (its private /tmp).
    used=$(df --output=pcent / | tail -n 1 | tr -dc '0-9')
    aws cloudwatch put-metric-data --region ${escape region} \
      --namespace ${escape namespace} --metric-name RootDiskUsedPercent --unit Percent \
      --dimensions ${escape dimensions} --value "$used"
  '';
}
