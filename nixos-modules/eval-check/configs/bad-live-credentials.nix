# A credential read in place needs a group that exists before the service starts, and a file.
# expect: services.larder.liveCredentials are read by larderd from their own files
# expect: services.larder.liveCredentials: database-password has no file
{ ... }:
{
  imports = [ ../../larder.nix ];
  services.larder = {
    enable = true;
    credentials.token-hs256-secret-base64 = "/run/keys/t";
    dynamicUser = true;
    liveCredentials = [ "database-password" ];
  };
}
