{
  description = "larder: a self-hosted Nix binary cache (server, client, NixOS module)";

  # No flake.lock is committed yet: the first `nix flake lock` (or any flake command) on a
  # machine with network access pins nixpkgs; commit the lock it writes.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        larder = pkgs.callPackage ./nixos-modules/package.nix { };
        default = larder;
      });

      overlays.default = final: _prev: {
        larder = final.callPackage ./nixos-modules/package.nix { };
      };

      # Modules, not paths: `nix flake check` wants functions or attribute sets here. Each
      # brings this flake's package as the default, so importers need no overlay.
      nixosModules = {
        larder = { pkgs, lib, ... }: {
          imports = [ ./nixos-modules/larder.nix ];
          services.larder.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
        default = self.nixosModules.larder;
        # A deploy agent (`larder agent`) following a cache's deployments on this host.
        larder-agent = { pkgs, lib, ... }: {
          imports = [ ./nixos-modules/agent.nix ];
          services.larder-agent.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
        # The EC2 host profile (imports the amazon image and the module).
        aws-host = { pkgs, lib, ... }: {
          imports = [ ./nixos-modules/aws-host.nix ];
          services.larder.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.nodejs_24
            pkgs.opentofu
            pkgs.just
            pkgs.age
            pkgs.jq
            pkgs.shellcheck
          ];
        };
      });

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        vm = import ./nixos-modules/vm-test.nix {
          inherit pkgs;
          larderModule = self.nixosModules.default;
          larderPackage = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      });
    };
}
