# larder's operator commands. Every recipe is one npm script or one script file; arguments
# are passed through as they are ("$@", never re-split by a shell).
set positional-arguments

node := "npx --no-install node"

# List the recipes
default:
    @{{just_executable()}} --list --unsorted

# Synthesize the CDKTF stacks into cdktf.out/
synth *args:
    @{{node}} scripts/src/tf.ts synth "$@"

# Show what deploy would change
plan *args:
    @{{node}} scripts/src/tf.ts plan "$@"

# Create or update the infrastructure (--dry-run: plan only)
deploy *args:
    @{{node}} scripts/src/tf.ts deploy "$@"

# Tear the infrastructure down (--dry-run: plan only); if it hangs on the VPC, see vpc-sg-cleanup
destroy *args:
    @{{node}} scripts/src/tf.ts destroy "$@"

# Shell on the deployed host (or run a command there)
ssh *args:
    @{{node}} scripts/src/ssh.ts "$@"

# Pick a secret and edit it in $EDITOR (or: just secret-edit FILE)
secret-edit *args:
    @{{node}} secrets/bin/larder-secrets.js edit "$@"

# Re-encrypt the secrets whose recipients changed in secrets/recipients.json
secrets-rekey *args:
    @{{node}} secrets/bin/larder-secrets.js rekey "$@"

# Verify every secret is encrypted to exactly its configured recipients (CI)
secrets-check:
    @{{node}} secrets/bin/larder-secrets.js check

# After an instance replacement: fetch the new host key, update recipients, rekey
adopt-host *args:
    @{{node}} scripts/src/adopt-host.ts "$@"

# Run the garbage collector once on the deployed host
gc-once *args:
    @{{node}} scripts/src/gc-once.ts "$@"

# Delete the security groups that keep the VPC from being destroyed (dry run unless --yes)
vpc-sg-cleanup *args:
    @{{node}} scripts/src/vpc-sg-cleanup.ts "$@"

# Mint a token on the host: just token --sub ci --pull 'main' --push 'main'
token *args:
    @{{node}} scripts/src/make-token.ts "$@"

# Create a cache on the host: just cache-create NAME [--public] [--priority N]
cache-create *args:
    @{{node}} scripts/src/cache-create.ts "$@"

# Evaluate the NixOS module with a nixpkgs tree (NIXPKGS=path or <nixpkgs>); skips without one
nixos-eval:
    @bash nixos-modules/eval-check.sh

# Roll a store path out to an environment's hosts and follow it: just rollout [SERVER:]CACHE ENV PATH [flags]
rollout *args:
    @{{node}} server/bin/larder.js deploy activate --wait "$@"

# Run every workspace's tests (CI)
test *args:
    @npm test -- "$@"
