# A host that follows deployments with the deploy agent (services.larder-agent), substituting
# from the cache it deploys from.
{ ... }:
{
  imports = [
    ../../agent.nix
    (import ../expect.nix ({ lib, ... }: [
      { what = "the agent runs with its token as a credential and trusts the cache's key";
        ok = c: c.systemd.services.larder-agent.serviceConfig.LoadCredential == [ "token:/run/secrets/larder-agent-token" ]
          && lib.hasInfix "--token-file %d/token" c.systemd.services.larder-agent.serviceConfig.ExecStart
          && lib.elem "https://cache.example.org/main" c.nix.settings.trusted-substituters
          && lib.elem "main:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" c.nix.settings.trusted-public-keys; }
    ]))
  ];
  networking.hostName = "web-1";
  services.larder-agent = {
    enable = true;
    serverUrl = "https://cache.example.org/";
    cache = "main";
    environment = "prod";
    tokenFile = "/run/secrets/larder-agent-token";
    substituter = {
      url = "https://cache.example.org/main";
      publicKey = "main:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    };
  };
}
