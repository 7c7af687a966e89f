# The EC2 host profile as the AWS stack's user data sets it (it imports amazon-image.nix).
{ ... }:
{
  imports = [
    ../../aws-host.nix
    (import ../expect.nix ({ lib, admin }: [
      { what = "the token key is a credential copy; the database URL is read in place (RDS rotation, no restart); no environment file";
        ok = c: c.systemd.services.larder.serviceConfig.LoadCredential == [ "token-hs256-secret-base64:/run/larder-aws/token" ]
          && c.systemd.services.larder.serviceConfig.EnvironmentFile == [ ]
          && c.services.larder.settings.database.url-file == "/run/larder-aws/database-url"
          && !(c.services.larder.settings.database ? url && c.services.larder.settings.database.url != null); }
      { what = "larder runs as the static user and group larder, which may read the database URL";
        ok = c: !c.services.larder.dynamicUser
          && c.systemd.services.larder.serviceConfig.Group == "larder"
          && c.users.groups ? larder; }
      { what = "public caches' layouts: larderd announces the CDN's URL and keeps them under the CDN's origin path";
        ok = c: c.services.larder.settings.bucket-layout == { prefix = "public"; public-url = "https://nix.example.org/"; }; }
      { what = "the secrets are fetched again every 2 minutes, and at once when larderd's password is refused";
        ok = c: c.systemd.timers.larder-aws-secrets.timerConfig.OnUnitActiveSec == "2m"
          && c.systemd.paths.larder-aws-secrets-now.pathConfig == { PathChanged = c.services.larder.settings.database.auth-failure-file; Unit = "larder-aws-secrets.service"; }
          && c.services.larder.settings.database.auth-failure-file == "/var/lib/larder/database-auth-failed"; }
      { what = "larderd-admin loads the same credential and no copy of the database URL";
        ok = c: lib.hasInfix "'--property=LoadCredential=token-hs256-secret-base64:/run/larder-aws/token'" (admin c)
          && !(lib.hasInfix "LoadCredential=database-url" (admin c)); }
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
    bucketLayout.publicUrl = "https://nix.example.org/";
  };
}
