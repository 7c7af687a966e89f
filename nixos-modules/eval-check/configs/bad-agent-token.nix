# The deploy agent's token in the store, where every user can read it: refused by name.
# expect: services.larder-agent.tokenFile: /nix/store/00000000000000000000000000000000-agent-token must be an absolute path outside the Nix store
{ ... }:
{
  imports = [ ../../agent.nix ];
  networking.hostName = "web-1";
  services.larder-agent = {
    enable = true;
    serverUrl = "https://cache.example.org/";
    cache = "main";
    environment = "prod";
    tokenFile = "/nix/store/00000000000000000000000000000000-agent-token";
  };
}
