# Values of the wrong type, caught by the option types.
# expect: services.larder.settings.garbage-collection.interval
{ ... }:
{
  imports = [ ../../larder.nix ];
  services.larder = { enable = true; credentials.token-hs256-secret-base64 = "/run/keys/t"; settings.garbage-collection.interval = "twelve hours"; };
}
