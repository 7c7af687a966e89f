# nginx without the cache's domain: larder's assertion, not a coercion error.
# expect: services.larder.nginx.enable needs services.larder.nginx.hostName
{ ... }:
{
  imports = [ ../../larder.nix ];
  services.larder = { enable = true; credentials.token-hs256-secret-base64 = "/run/keys/t"; nginx.enable = true; };
}
