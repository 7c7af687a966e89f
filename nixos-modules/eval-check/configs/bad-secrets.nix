# Secrets where every user can read them: each must be refused by name.
# expect: settings.jwt.signing.token-hs256-secret-base64: token keys must not be in the Nix store
# expect: settings.database.url contains a password
# expect: settings.storage.credentials.secret_access_key: S3 credentials must not be in the Nix store
# expect: services.larder.credentials: database-password is a file in the Nix store
{ ... }:
{
  imports = [ ../../larder.nix ];
  services.larder = {
    enable = true;
    credentials.database-password = "/nix/store/00000000000000000000000000000000-db-password";
    settings = {
      jwt.signing.token-hs256-secret-base64 = "c2VjcmV0";
      database.url = "postgresql://larder:hunter2@db.internal/larder";
      storage = { type = "s3"; region = "eu-west-1"; bucket = "b"; credentials.secret_access_key = "x"; };
    };
  };
}
