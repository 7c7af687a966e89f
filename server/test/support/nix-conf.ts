/**
 * The nix.conf every test and the bench give the real Nix 2.8 client: no daemon, no build users,
 * no substituters or trusted keys but those a command names, no narinfo disk-cache TTLs (a stale
 * cached miss would hide a path a test just pushed), and the host's /bin and /usr inside the
 * chroot stores' build sandbox (shared/nix/roundtrip.sh).
 */
export const ISOLATED_NIX_CONF = `build-users-group =
sandbox = false
experimental-features = nix-command
substituters =
trusted-public-keys =
narinfo-cache-negative-ttl = 0
narinfo-cache-positive-ttl = 0
sandbox-paths = /bin /usr /lib /lib64
`;
