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
          else [ "settings.jwt.signing.${k}: token keys must not be in the Nix store; put the environment variable LARDER_SERVER_TOKEN_${if k == "token-hs256-secret-base64" then "HS256_SECRET" else if k == "token-rs256-secret-base64" then "RS256_SECRET" else "RS256_PUBKEY"}_BASE64 in services.larder.environmentFile or services.larder.credentials instead (generate an HS256 secret with `openssl rand -base64 64`)" ])
        signingKeys)
      (if urlHasPassword (get [ "database" "url" ] settings)
       then [ "settings.database.url contains a password: set it to null and put LARDER_SERVER_DATABASE_URL=<url> in services.larder.environmentFile or services.larder.credentials instead" ]
       else [ ])
      (builtins.concatMap
        (k:
          if get [ "storage" "credentials" k ] settings == null then [ ]
          else [ "settings.storage.credentials.${k}: S3 credentials must not be in the Nix store; use the instance role, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in services.larder.environmentFile" ])
        [ "secret_access_key" "session_token" ])
    ];

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
