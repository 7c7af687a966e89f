#!/usr/bin/env bash
# Development check: evaluate the module with the real NixOS module system of a nixpkgs tree.
# Each good configuration in eval-check/configs/ must instantiate
# config.system.build.toplevel.drvPath; each bad-*.nix must fail with every message named on
# its "# expect:" lines (larder's own assertions and option types, not a Nix error).
#
#   NIXPKGS=/path/to/nixpkgs nixos-modules/eval-check.sh      (or nixpkgs on NIX_PATH: <nixpkgs>)
#   LARDER_EVAL_PKGS=FILE   a stand-in package set for a tree without pkgs/ (evaluation only)
#
# Without a nixpkgs tree it skips and says why (exit 0); it is the one check allowed to skip in CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
configs=$here/eval-check/configs

nixpkgs=${NIXPKGS:-}
if [ -z "$nixpkgs" ]; then
  nixpkgs=$(nix-instantiate --find-file nixpkgs 2>/dev/null || true)
fi
if [ -z "$nixpkgs" ]; then
  echo "eval-check: skipped: no nixpkgs tree (set NIXPKGS=/path/to/nixpkgs or put nixpkgs on NIX_PATH)"
  exit 0
fi
if [ ! -e "$nixpkgs/nixos/lib/eval-config.nix" ] || [ ! -e "$nixpkgs/lib/default.nix" ]; then
  echo "eval-check: skipped: $nixpkgs has no nixos/lib/eval-config.nix or lib/ (not a nixpkgs tree)"
  exit 0
fi
pkgs_arg=()
if [ -n "${LARDER_EVAL_PKGS:-}" ]; then
  pkgs_arg=(--arg pkgsFile "$(realpath "$LARDER_EVAL_PKGS")")
elif [ ! -e "$nixpkgs/pkgs/top-level/default.nix" ]; then
  echo "eval-check: skipped: $nixpkgs has no package set (pkgs/top-level); set LARDER_EVAL_PKGS to a stand-in package set"
  exit 0
fi
nixpkgs=$(realpath "$nixpkgs")

evaluate() { # CONFIG -> drvPath on stdout, errors on stderr
  nix-instantiate --eval --strict --read-write-mode "${pkgs_arg[@]}" \
    --arg nixpkgs "$nixpkgs" --arg configuration "$1" "$here/eval-check/eval.nix" \
    -A config.system.build.toplevel.drvPath
}

failed=0
for config in "$configs"/*.nix; do
  name=$(basename "$config" .nix)
  err=$(mktemp)
  if [[ $name == bad-* ]]; then
    if out=$(evaluate "$config" 2>"$err"); then
      echo "FAIL $name: evaluated ($out) but must be refused"
      failed=1
    else
      missing=0
      while IFS= read -r expected; do
        if ! grep -qF -- "$expected" "$err"; then
          echo "FAIL $name: refused, but without: $expected"
          missing=1
        fi
      done < <(sed -n 's/^# expect: //p' "$config")
      if [ "$missing" = 0 ]; then echo "ok   $name: refused with larder's messages"; else failed=1; sed 's/^/     /' "$err" | grep -v '^ *$' | head -20; fi
    fi
  else
    if out=$(evaluate "$config" 2>"$err"); then
      echo "ok   $name: $out"
    else
      echo "FAIL $name:"
      sed 's/^/     /' "$err" | grep -v '^ *$' | tail -20
      failed=1
    fi
  fi
  rm -f "$err"
done
exit "$failed"
