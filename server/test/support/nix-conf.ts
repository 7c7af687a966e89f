/**
 * The nix.conf every test and the bench give the real Nix 2.8 client: no daemon, no build users,
 * no substituters or trusted keys but those a command names, and the host's /bin and /usr inside the
 * chroot stores' build sandbox (shared/nix/roundtrip.sh). Nix's narinfo disk-cache TTLs are left at
 * their defaults (30 days for a hit, 1 hour for a miss), as users have them: a test that wants a
 * fresh view uses a fresh XDG_CACHE_HOME (another machine), never settings that hide what users see.
 */
export const ISOLATED_NIX_CONF = `build-users-group =
sandbox = false
experimental-features = nix-command
substituters =
trusted-public-keys =
sandbox-paths = /bin /usr /lib /lib64
`;
