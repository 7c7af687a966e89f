# NixOS VM test, run by `nix flake check` (or `nix build .#checks.x86_64-linux.vm`) on a Linux
# machine with KVM and network access to fetch nixpkgs. Three machines:
#   server: services.larder behind nginx, on a local PostgreSQL, GC from a timer;
#   pusher: has a closure (hello) and pushes it with `nix copy --to`, authenticated by a token;
#   puller: does not have it and substitutes it through the cache, checking the cache's signature.
{ pkgs, larderModule, larderPackage }:
let
  # A fixed, test-only signing secret: this VM is thrown away after the run.
  testToken = pkgs.writeText "larder-test-token" "dGVzdC1vbmx5LXNlY3JldC1mb3ItdGhlLWxhcmRlci12bS10ZXN0LTAxMjM0NTY3ODk=";
  closure = pkgs.hello;
in
pkgs.testers.runNixOSTest {
  name = "larder";

  nodes = {
    server = { ... }: {
      imports = [ larderModule ];
      virtualisation.memorySize = 2048;

      # The module refuses store paths for secrets; a real host uses agenix or sops-nix. Here a
      # boot-time copy of the test secret stands in for that.
      systemd.tmpfiles.rules = [ "C /run/larder-test-token 0400 root root - ${testToken}" ];

      services.larder = {
        enable = true;
        package = larderPackage;
        credentials.token-hs256-secret-base64 = "/run/larder-test-token";
        database.createLocally = true;
        garbageCollection.timer.enable = true;
        nginx = {
          enable = true;
          hostName = "server";
          enableACME = false;
        };
      };
    };

    pusher = { ... }: {
      system.extraDependencies = [ closure ];
      nix.settings.experimental-features = [ "nix-command" ];
    };

    puller = { ... }: {
      nix.settings = {
        experimental-features = [ "nix-command" ];
        substituters = pkgs.lib.mkForce [ ];
      };
    };
  };

  testScript = ''
    start_all()

    server.wait_for_unit("larder.service")
    server.wait_for_open_port(8080)
    server.wait_for_unit("nginx.service")
    server.succeed("curl -fsS http://127.0.0.1:8080/_api/v1/health")
    server.succeed("curl -fsS http://server/_api/v1/health")

    # The hardened unit really is sandboxed (dynamic user, read-only system).
    server.succeed("systemctl show larder.service -p DynamicUser | grep -qx DynamicUser=yes")
    server.succeed("systemctl show larder.service -p ProtectSystem | grep -qx ProtectSystem=strict")

    public_key = server.succeed("larderd-admin create-cache demo | tail -n1").strip()
    assert public_key.startswith("demo:"), f"unexpected public key line: {public_key!r}"
    token = server.succeed(
      "larderd-admin make-token --sub vm-test --validity '1 day' --push demo --pull demo | tail -n1"
    ).strip()

    # Nix sends a netrc password as HTTP Basic; larder takes it as the token.
    pusher.succeed(f"printf 'machine server\\npassword %s\\n' '{token}' > /root/netrc")
    pusher.succeed(
      "nix copy --option netrc-file /root/netrc "
      "--to 'http://server/_push/demo?compression=zstd' ${closure}"
    )

    # Without the token the private cache looks absent.
    puller.fail("curl -fsS http://server/demo/nix-cache-info")

    puller.succeed(f"printf 'machine server\\npassword %s\\n' '{token}' > /root/netrc")
    # The VMs see the host's store files; what counts is the puller's Nix database.
    puller.fail("nix-store --check-validity ${closure}")
    puller.succeed(
      "nix-store --option netrc-file /root/netrc "
      "--option substituters http://server/demo "
      f"--option trusted-public-keys '{public_key}' "
      "--option require-sigs true "
      "--realise ${closure}"
    )
    puller.succeed("${closure}/bin/hello")
    puller.succeed("nix store verify --sigs-needed 1 "
                   f"--option trusted-public-keys '{public_key}' ${closure}")

    # What `just gc-once` sends over ssh: one GC through larderd-admin, a JSON summary last.
    summary = server.succeed("larderd-admin --mode garbage-collector-once | tail -n1").strip()
    assert summary.startswith("{") and '"objects"' in summary, f"unexpected GC summary: {summary!r}"

    # The GC timer's unit runs to completion with the service's identity and secrets.
    server.succeed("systemctl start larder-gc.service")
    server.succeed("systemctl is-active larder.service")
  '';
}
