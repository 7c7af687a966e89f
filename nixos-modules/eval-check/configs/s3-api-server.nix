# One node of a cluster: credentials for everything secret, S3-compatible storage, API only.
{ ... }:
{
  imports = [
    ../../larder.nix
    (import ../expect.nix ({ lib, admin }: [
      { what = "every credential named in server.toml by its credential name; the URL default dropped";
        ok = c: let s = c.services.larder.settings; in
          s.jwt.signing.token-rs256-pubkey-base64-file == "token-rs256-pubkey-base64"
          && s.database.url-file == "database-url" && s.database.url == null
          && s.storage.credentials.access_key_id_file == "s3-access-key-id"
          && s.storage.credentials.secret_access_key_file == "s3-secret-access-key"
          && lib.length c.systemd.services.larder.serviceConfig.LoadCredential == 4
          && c.systemd.services.larder.serviceConfig.DynamicUser; }
      { what = "api-server mode";
        ok = c: lib.hasInfix "\"--mode\" \"api-server\"" c.systemd.services.larder.serviceConfig.ExecStart; }
    ]))
  ];
  services.larder = {
    enable = true;
    mode = "api-server";
    credentials = {
      token-rs256-pubkey-base64 = "/run/keys/larder-token.pub";
      database-url = "/run/keys/larder-database-url";
      s3-access-key-id = "/run/keys/larder-s3-id";
      s3-secret-access-key = "/run/keys/larder-s3-secret";
    };
    environment.AWS_REGION = "eu-west-1";
    settings = {
      listen = "[::]:8080";
      storage = { type = "s3"; region = "eu-west-1"; bucket = "my-larder-nars"; endpoint = "http://127.0.0.1:9000"; };
      soft-delete-caches = true;
    };
  };
}
