# One NixOS configuration evaluated with the real NixOS module system of a nixpkgs tree.
#   nixpkgs:  the tree (a checkout, a channel, or <nixpkgs>)
#   pkgsFile: optional stand-in package set for a tree without pkgs/ (a function
#             { lib, nixpkgsPath, system } -> pkgs); by default nixpkgs' own packages.
{ nixpkgs, configuration, pkgsFile ? null, system ? "x86_64-linux" }:
let
  lib = import (nixpkgs + "/lib");
  pkgs =
    if pkgsFile == null then import nixpkgs { inherit system; }
    else import pkgsFile { inherit lib system; nixpkgsPath = nixpkgs; };
in
import (nixpkgs + "/nixos/lib/eval-config.nix") {
  inherit system lib pkgs;
  modules = [
    configuration
    ({ lib, ... }: {
      # What every real machine has and these sketches leave out.
      system.stateVersion = lib.mkDefault "24.05";
      fileSystems."/" = lib.mkDefault { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; };
      boot.loader.grub.device = lib.mkDefault "/dev/sda";
      documentation.enable = false;
    })
  ];
}
