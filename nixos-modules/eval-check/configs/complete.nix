# docs/NIXOS_MODULES.md, "A complete example", verbatim but for the imports: the module from this
# checkout, and a stand-in for agenix's age.secrets option (server/test/nixos-module.test.ts keeps
# the two identical).
let
  agenixStandIn = { lib, ... }: {
    options.age.secrets = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
        options.file = lib.mkOption { type = lib.types.unspecified; };
        options.path = lib.mkOption { type = lib.types.str; default = "/run/agenix/${name}"; };
      }));
      default = { };
    };
  };
  expectations = import ../expect.nix ({ lib, admin }: [
    { what = "storage outside the state directory: static user, directory created for it";
      ok = c: !c.systemd.services.larder.serviceConfig.DynamicUser && c.users.users.larder.isSystemUser
        && lib.elem "d /srv/larder/nars 0700 larder larder - -" c.systemd.tmpfiles.rules; }
    { what = "larderd-admin runs with the service's writable paths and credential";
      ok = c: lib.hasInfix "'--property=ReadWritePaths=/srv/larder/nars'" (admin c)
        && lib.hasInfix "'--property=LoadCredential=token-hs256-secret-base64:/run/agenix/larder-token'" (admin c)
        && lib.hasInfix "'--property=DynamicUser=no'" (admin c); }
    { what = "the signing key is a credential named in server.toml, not in the environment";
      ok = c: c.services.larder.settings.jwt.signing.token-hs256-secret-base64-file == "token-hs256-secret-base64"
        && c.systemd.services.larder.serviceConfig.LoadCredential == [ "token-hs256-secret-base64:/run/agenix/larder-token" ]
        && c.systemd.services.larder.serviceConfig.EnvironmentFile == [ ]; }
  ]);
in
{ config, ... }:
{
  imports = [ ../../larder.nix agenixStandIn expectations ];

  age.secrets.larder-token.file = ./secrets/larder-token.age;   # openssl rand -base64 64

  security.acme = { acceptTerms = true; defaults.email = "ops@example.org"; };

  services.larder = {
    enable = true;
    credentials.token-hs256-secret-base64 = config.age.secrets.larder-token.path;
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
