# The EC2 host profile as the AWS stack's user data sets it (it imports amazon-image.nix).
{ ... }:
{
  imports = [ ../../aws-host.nix ];
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
