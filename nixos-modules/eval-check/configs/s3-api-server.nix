# One node of a cluster: credentials for everything secret, S3-compatible storage, API only.
{ ... }:
{
  imports = [ ../../larder.nix ];
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
