# The typed part of `services.larder.settings`, as plain data: no nixpkgs, no lib.
#
# larder.nix turns each entry into a NixOS option (so typos in these keys fail evaluation and
# they appear in the manual), and server/test/nixos-module.test.ts evaluates this file with
# `nix-instantiate --eval --strict --json` and feeds `settings` and every entry's `example` to the
# server's own config parser. That keeps the module, the docs and the server's schema from
# drifting apart: a key here that larderd would reject fails the test.
#
# Entry fields:
#   path         key path inside server.toml
#   type         "str" | "bool" | "int" | "listOfStr" | "enum" (with `values`) | "duration"
#   nullable     the key may be left out (null is dropped from the rendered TOML)
#   default      the value the module sets with mkDefault (null: left to the server)
#   variant      only for storage keys: the storage type the key belongs to; the default
#                applies only while `storage.type` is that type, because the server rejects
#                keys of the other backend
#   example      a value the server accepts; `exampleWith` replaces whole top-level tables
#                first, so an s3 key is tried inside an s3 storage table
{ stateDir ? "/var/lib/larder" }:
let
  s3Storage = { storage = { type = "s3"; region = "eu-west-1"; bucket = "larder-cache"; }; };

  # An s3 storage key, unset unless given (tried inside an s3 storage table).
  s3Key = name: fields: {
    path = [ "storage" name ];
    type = "str";
    nullable = true;
    variant = "s3";
    default = null;
    exampleWith = s3Storage;
  } // fields;

  options = [
    {
      path = [ "listen" ];
      type = "str";
      # Loopback: the module puts nginx in front; set "[::]:8080" to serve directly.
      default = "127.0.0.1:8080";
      example = "[::]:8080";
      description = "Address and port larderd listens on (HOST:PORT, IPv6 in brackets).";
    }
    {
      path = [ "api-endpoint" ];
      type = "str";
      nullable = true;
      default = null;
      example = "https://cache.example.org/";
      description = "Public URL of the server, ending in '/'. Set automatically from nginx.hostName.";
    }
    {
      path = [ "substituter-endpoint" ];
      type = "str";
      nullable = true;
      default = null;
      example = "https://cache.example.org/";
      description = "Public URL substituters use, ending in '/'; defaults to api-endpoint.";
    }
    {
      path = [ "allowed-hosts" ];
      type = "listOfStr";
      default = [ ];
      example = [ "cache.example.org" ];
      description = "Host headers accepted; empty accepts any. Set automatically from nginx.hostName.";
    }
    {
      path = [ "max-nar-info-size" ];
      type = "int";
      default = 1048576;
      example = 2097152;
      description = "Largest narinfo or attic upload preamble accepted, in bytes.";
    }
    {
      path = [ "database" "url" ];
      type = "str";
      nullable = true;
      default = "sqlite://${stateDir}/server.db";
      example = "postgresql://larder@/larder?host=/run/postgresql";
      description = ''
        sqlite://PATH or postgresql://… without a password. The password goes in
        credentials.database-password (or the whole URL in credentials.database-url).
      '';
    }
    {
      path = [ "storage" "type" ];
      type = "enum";
      values = [ "local" "s3" ];
      default = "local";
      example = "s3";
      exampleWith = s3Storage;
      description = "Storage backend for NARs.";
    }
    {
      path = [ "storage" "path" ];
      type = "str";
      nullable = true;
      variant = "local";
      default = "${stateDir}/storage";
      example = "/srv/larder/nars";
      description = "Directory of stored NARs (local storage). Outside the state directory it is added to ReadWritePaths.";
    }
    (s3Key "region" {
      example = "us-east-1";
      description = "AWS region of the bucket (s3 storage).";
    })
    (s3Key "bucket" {
      example = "my-larder-nars";
      description = "Bucket name (s3 storage).";
    })
    (s3Key "endpoint" {
      example = "http://127.0.0.1:9000";
      description = "Endpoint of an S3-compatible store (MinIO, Garage, R2); implies path-style addressing.";
    })
    (s3Key "prefix" {
      example = "larder/nars";
      description = "Key prefix inside the bucket, to share a bucket.";
    })
    {
      path = [ "storage" "presign-downloads" ];
      type = "bool";
      variant = "s3";
      default = false;
      example = true;
      exampleWith = s3Storage;
      description = "Redirect NAR downloads to short-lived presigned URLs, so bytes bypass the server.";
    }
    {
      path = [ "compression" "type" ];
      type = "enum";
      values = [ "zstd" "none" "brotli" "xz" ];
      default = "zstd";
      example = "xz";
      description = "Compression of stored NARs, applied once at ingest.";
    }
    {
      path = [ "compression" "level" ];
      type = "int";
      nullable = true;
      default = null;
      example = 9;
      description = "Compression level; null uses the server's default (zstd 3, brotli 5, xz 2).";
    }
    {
      path = [ "garbage-collection" "interval" ];
      type = "duration";
      default = "12 hours";
      example = "0s";
      description = ''Time between periodic GC runs; "0s" disables them (set by garbageCollection.timer.enable).'';
    }
    {
      path = [ "garbage-collection" "default-retention-period" ];
      type = "duration";
      default = "0s";
      example = "3 months";
      description = ''Retention of caches without their own period; "0s" keeps paths forever.'';
    }
    {
      path = [ "garbage-collection" "grace-period" ];
      type = "duration";
      default = "6 hours";
      example = "1 day";
      description = "Age below which unreferenced NARs and staged uploads are never collected.";
    }
    {
      path = [ "jwt" "token-bound-issuer" ];
      type = "str";
      nullable = true;
      default = null;
      example = "larder";
      description = "Required `iss` claim of tokens; set on minted tokens.";
    }
    {
      path = [ "jwt" "token-bound-audiences" ];
      type = "listOfStr";
      nullable = true;
      default = null;
      example = [ "cache.example.org" ];
      description = "Accepted `aud` claims; the first is set on minted tokens.";
    }
    {
      path = [ "log" "level" ];
      type = "enum";
      values = [ "fatal" "error" "warn" "info" "debug" "trace" "silent" ];
      default = "info";
      example = "debug";
      description = "Log level (JSON lines to the journal).";
    }
  ];

  # builtins-only stand-ins for lib.setAttrByPath / lib.recursiveUpdate.
  setAt = path: value:
    if path == [ ] then value
    else { ${builtins.head path} = setAt (builtins.tail path) value; };
  merge = a: b:
    a // builtins.mapAttrs
      (k: v: if builtins.isAttrs v && builtins.isAttrs (a.${k} or null) then merge a.${k} v else v)
      b;

  defaultStorageType = "local";
  applies = o: (o.variant or defaultStorageType) == defaultStorageType;
in
{
  inherit options;

  # server.toml as the module renders it when nothing is set: what check-config must accept.
  settings = builtins.foldl'
    (acc: o: if o.default == null || !(applies o) then acc else merge acc (setAt o.path o.default))
    { }
    options;

  # Secrets as systemd credentials: services.larder.credentials.<name> = "/path/outside/the/store".
  # The unit loads each (LoadCredential=<name>:<path>) and server.toml names it by the relative
  # path <name>, which larderd looks up in $CREDENTIALS_DIRECTORY: the value is in neither the
  # store nor the environment. `dummy` is what the build-time config check reads instead (only
  # its shape is checked); `token` marks the signing keys (one of them is required); `live` the
  # ones larderd re-reads while it runs (others are read once at start).
  secrets = [
      { name = "token-hs256-secret-base64"; path = [ "jwt" "signing" "token-hs256-secret-base64-file" ]; token = true;
        dummy = "bGFyZGVyLWJ1aWxkLXRpbWUtY2hlY2stbm90LWEtcmVhbC1zZWNyZXQtMDEyMzQ1Njc4OQ=="; }
      # base64 of "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n" / the PUBLIC KEY equivalent
      { name = "token-rs256-secret-base64"; path = [ "jwt" "signing" "token-rs256-secret-base64-file" ]; token = true;
        dummy = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCi0tLS0tRU5EIFBSSVZBVEUgS0VZLS0tLS0K"; }
      { name = "token-rs256-pubkey-base64"; path = [ "jwt" "signing" "token-rs256-pubkey-base64-file" ]; token = true;
        dummy = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0KLS0tLS1FTkQgUFVCTElDIEtFWS0tLS0tCg=="; }
      # live: larderd reads the file again for every new connection (services.larder.liveCredentials).
      { name = "database-url"; path = [ "database" "url-file" ]; token = false; live = true;
        dummy = "postgresql://larder@localhost/larder"; }
      { name = "database-password"; path = [ "database" "password-file" ]; token = false; live = true;
        dummy = "build-time-check"; }
      { name = "s3-access-key-id"; path = [ "storage" "credentials" "access_key_id_file" ]; token = false;
        dummy = "AKIDBUILDTIMECHECK"; }
      { name = "s3-secret-access-key"; path = [ "storage" "credentials" "secret_access_key_file" ]; token = false;
        dummy = "build-time-check"; }
      { name = "s3-session-token"; path = [ "storage" "credentials" "session_token_file" ]; token = false;
        dummy = "build-time-check"; }
    ];
}
