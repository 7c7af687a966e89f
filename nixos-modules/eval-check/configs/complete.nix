# docs/NIXOS_MODULES.md, "A complete example" (agenix paths written out).
{ ... }:
{
  imports = [ ../../larder.nix ];

  security.acme = { acceptTerms = true; defaults.email = "ops@example.org"; };

  services.larder = {
    enable = true;
    credentials.token-hs256-secret-base64 = "/run/agenix/larder-token";
    database.createLocally = true;
    garbageCollection.timer = { enable = true; dates = "*-*-* 03:00:00"; };
    nginx = { enable = true; hostName = "cache.example.org"; };
    settings = {
      storage.path = "/srv/larder/nars";
      compression = { type = "zstd"; level = 8; };
      max-nar-info-size = 2097152;
      garbage-collection.default-retention-period = "3 months";
      jwt.token-bound-issuer = "cache.example.org";
      log.level = "info";
    };
  };
}
