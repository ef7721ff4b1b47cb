#!/usr/bin/env bash
# What tests/sarif.rs needs: Microsoft's reference SARIF validator (`Sarif.Multitool validate`, from the npm package
# @microsoft/sarif-multitool-linux, a self-contained .NET binary). Idempotent and cached:
#
# - npm: the package in .cache/sarif/ (never a global install), skipped when the stamp file names the same version
#   and the binary is there; a partial tree is removed and installed again.
#
# Prints progress on stderr and, on stdout, the path of the Sarif.Multitool binary. Exits non-zero with a message on
# any failure. tests/sarif.rs runs this script itself when ALTCFI_SARIF_MULTITOOL is not set.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${ALTCFI_CACHE:-$repo/.cache}/sarif"
version=5.7.0
package=@microsoft/sarif-multitool-linux
say() { echo "deps-sarif: $*" >&2; }
die() { say "error: $*"; exit 1; }
command -v npm >/dev/null || die "npm not found (Node 20 is needed to install $package)"
mkdir -p "$cache"
# One installer at a time (parallel test binaries or two suites in one tree would race on node_modules).
exec 9>"$cache/.lock"
flock 9

want="$package=$version"
stamp="$cache/stamp"
bin="$cache/node_modules/$package/Sarif.Multitool"
complete() { [[ -f $stamp && $(cat "$stamp") == "$want" && -x $bin ]]; }
if complete; then
    say "$want present"
else
    say "npm install $package@$version into $cache"
    rm -rf "$cache/node_modules" "$cache/package.json" "$cache/package-lock.json" "$stamp"
    log="$cache/install.log"
    cat >"$cache/package.json" <<EOF
{"name": "altcfi-sarif-validator", "private": true, "description": "scripts/deps-sarif.sh"}
EOF
    (cd "$cache" && npm install --no-audit --no-fund --prefer-offline "$package@$version" >"$log" 2>&1) ||
        { tail -n 30 "$log" >&2; die "npm install $package@$version failed (log: $log)"; }
    [[ -f $bin ]] || die "$bin missing after npm install (log: $log)"
    chmod +x "$bin"
    echo "$want" >"$stamp"
fi
# The binary is .NET: without libicu it must run with invariant globalization (tests/sarif.rs sets this too).
if ! DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 "$bin" --version >/dev/null 2>&1; then
    die "$bin does not run (try: DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 $bin --version)"
fi
echo "$bin"
