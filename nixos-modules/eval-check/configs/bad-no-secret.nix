# No signing key at all.
# expect: services.larder needs a token signing key outside the Nix store
{ ... }: { imports = [ ../../larder.nix ]; services.larder.enable = true; }
