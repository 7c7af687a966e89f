# Pure helpers the module uses on `settings` (builtins only, so the test can evaluate them
# with plain `nix-instantiate --eval`, without nixpkgs).
let
  get = path: set:
    if path == [ ] then set
    else if builtins.isAttrs set && set ? ${builtins.head path}
    then get (builtins.tail path) set.${builtins.head path}
    else null;

  matches = re: s: builtins.isString s && builtins.match re s != null;

  signingKeys = [
    "token-hs256-secret-base64"
    "token-rs256-secret-base64"
    "token-rs256-pubkey-base64"
  ];

  # user:password@ in the authority, or a password= query parameter.
  urlHasPassword = url:
    matches "[a-z]+://[^/@?]*:[^/@?]*@.*" url || matches ".*[?&]password=.*" url;
in
{
  inherit get urlHasPassword;

  # Every place in `settings` that would put a secret into the world-readable Nix store, as
  # one-line messages naming the key and where the value belongs instead.
  secretsInSettings = settings:
    builtins.concatLists [
      (builtins.concatMap
        (k:
          if get [ "jwt" "signing" k ] settings == null then [ ]
          else [ "settings.jwt.signing.${k}: token keys must not be in the Nix store; write the value to a root-only file and set services.larder.credentials.${k} to its path instead (generate an HS256 secret with `openssl rand -base64 64`)" ])
        signingKeys)
      (if urlHasPassword (get [ "database" "url" ] settings)
       then [ "settings.database.url contains a password: keep the URL without it and set services.larder.credentials.database-password to a root-only file holding the password (or services.larder.credentials.database-url to a file holding the whole URL)" ]
       else [ ])
      (builtins.concatMap
        (k:
          if get [ "storage" "credentials" k ] settings == null then [ ]
          else [ "settings.storage.credentials.${k}: S3 credentials must not be in the Nix store; use the instance role, or set services.larder.credentials.s3-${builtins.replaceStrings [ "_" ] [ "-" ] k} to a root-only file holding it" ])
        [ "secret_access_key" "session_token" ])
    ];

  # A signing key given by file in settings directly (not through services.larder.credentials).
  hasSigningKeyFile = settings:
    builtins.any (k: get [ "jwt" "signing" "${k}-file" ] settings != null) signingKeys;

  # `*-file` keys (paths: their key paths) whose file is in the world-readable store.
  secretFilesInStore = storeDir: paths: settings:
    builtins.concatMap
      (path:
        let v = get path settings; in
        if builtins.isString v && builtins.substring 0 (builtins.stringLength storeDir + 1) v == "${storeDir}/"
        then [ "settings.${builtins.concatStringsSep "." path} is a file in the Nix store, which every user can read; keep the secret outside (a root-only file, agenix or sops-nix) and set services.larder.credentials instead" ]
        else [ ])
      paths;

  # Where nginx reaches larderd: a wildcard listen address means "this host".
  proxyTarget = listen:
    let
      m = builtins.match "(\\[[0-9a-fA-F:.]+]|[^:]+):([0-9]+)" listen;
      host = builtins.elemAt m 0;
      port = builtins.elemAt m 1;
      local =
        if host == "[::]" then "[::1]"
        else if host == "0.0.0.0" then "127.0.0.1"
        else host;
    in
    if m == null then throw "services.larder.settings.listen: \"${listen}\" is not HOST:PORT (e.g. \"127.0.0.1:8080\")"
    else "http://${local}:${port}";

  # A PostgreSQL URL that points at this machine, so the unit must wait for postgresql.service.
  isLocalPostgres = url:
    matches "postgres(ql)?://.*" url
    && (matches ".*(/run/postgresql|localhost|127\\.0\\.0\\.1|\\[::1]).*" url || matches "postgres(ql)?://([^@/]*@)?/.*" url);

  # Files that hold secrets must stay out of the store: a store path is world-readable.
  isStorePath = storeDir: p: builtins.substring 0 (builtins.stringLength storeDir + 1) (toString p) == "${storeDir}/";
}
