# The EC2 host profile as the AWS stack's user data sets it (it imports amazon-image.nix).
{ ... }:
{
  imports = [
    ../../aws-host.nix
    (import ../expect.nix ({ lib, admin }: [
      { what = "secrets are credentials (token, database URL), no environment file";
        ok = c: c.systemd.services.larder.serviceConfig.LoadCredential == [ "database-url:/run/larder-aws/database-url" "token-hs256-secret-base64:/run/larder-aws/token" ]
          && c.systemd.services.larder.serviceConfig.EnvironmentFile == [ ]
          && c.services.larder.settings.database.url-file == "database-url"
          && !(c.services.larder.settings.database ? url && c.services.larder.settings.database.url != null); }
      { what = "larderd-admin loads the same credentials";
        ok = c: lib.hasInfix "'--property=LoadCredential=database-url:/run/larder-aws/database-url'" (admin c); }
    ]))
  ];
  services.larder.aws = {
    region = "eu-west-1";
    bucket = "larder-nars-123456789012";
    database = {
      host = "larder.abcdefghijkl.eu-west-1.rds.amazonaws.com";
      masterUserSecretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123-AbCdEf";
    };
    tokenSecretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:larder/token-AbCdEf";
    domain = "cache.example.org";
    tls = "acme";
    acmeEmail = "ops@example.org";
  };
}
