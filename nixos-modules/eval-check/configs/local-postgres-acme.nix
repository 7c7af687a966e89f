# PostgreSQL on the host (peer authentication), nginx with a Let's Encrypt certificate.
{ ... }:
{
  imports = [ ../../larder.nix ];
  security.acme = { acceptTerms = true; defaults.email = "ops@example.org"; };
  services.larder = {
    enable = true;
    credentials.token-hs256-secret-base64 = "/run/keys/larder-token";
    database.createLocally = true;
    nginx = { enable = true; hostName = "cache.example.org"; enableACME = true; };
  };
}
