#!/usr/bin/env bash
# scripts/deps.sh — install what the test suite needs beyond a fresh machine
# (Rust, gcc/binutils, Python 3, Node): the reference objtool binaries of
# Linux 6.12 and 6.1 and the Debian 6.12 kernel headers for out-of-tree
# module builds (tests/kmod, scripts/build-kmod.sh).
#
# Nothing is installed system-wide except missing *tools and shared
# libraries* (apt-get install).  The kernel packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into
#     ${ALTCFI_CACHE:-<repo>/.cache}/oracle/root
# and described by the shell-sourceable file <cache>/oracle/env:
#     OBJTOOL_612  objtool 6.12 for x86 (the *real* binary, not the wrapper)
#     OBJTOOL_61   objtool 6.1
#     KHEADERS_612 linux-headers-<ver>-amd64 dir (make -C $KHEADERS_612 M=...)
#     KVER_612     e.g. 6.12.117+deb12-amd64
#     KVER_61      Debian version of the linux-kbuild-6.1 package
#
# Idempotent: once the cache is complete a rerun does no network and no apt
# (it only re-checks tools/libraries and rewrites the path fix-ups and env).
#
# Environment:
#   ALTCFI_CACHE      cache root (default <repo>/.cache)
#   ALTCFI_KVER_612   preferred 6.12 ABI, e.g. "6.12.117+deb12"; used when all
#                     three packages are available, else the newest is taken.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${ALTCFI_CACHE:-$repo/.cache}/oracle
root=$cache/root   # dpkg -x target: $root/usr/src/..., $root/usr/lib/...
debs=$cache/debs   # downloaded .deb files
envfile=$cache/env

log() { echo "deps.sh: $*" >&2; }
die() { echo "deps.sh: error: $*" >&2; exit 1; }

# --- apt helpers -------------------------------------------------------------

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

apt_updated=0
apt_update_once() {   # `apt-get update` at most once, right before first use
    [ "$apt_updated" = 1 ] && return 0
    log "apt-get update"
    as_root apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
}

apt_install() {       # apt_install PKG... (only called with missing packages)
    local pkgs
    mapfile -t pkgs < <(printf '%s\n' "$@" | sort -u)
    set -- "${pkgs[@]}"
    apt_update_once
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install failed for: $*"
}

# True if apt knows a downloadable version of package $1.
apt_has() {
    local cand
    cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$cand" ] && [ "$cand" != "(none)" ]
}

# --- 1. build tools a module build and objtool need -------------------------
# command -> Debian package providing it.  The compiler name comes from the
# Debian headers' .kernelvariables (CROSS_COMPILE=x86_64-linux-gnu-, gcc-12).
declare -A tool_pkg=(
    [make]=make
    [x86_64-linux-gnu-gcc-12]=gcc-12
    [x86_64-linux-gnu-ld]=binutils-x86-64-linux-gnu
    [x86_64-linux-gnu-nm]=binutils-x86-64-linux-gnu
    [dpkg-deb]=dpkg
    [awk]=mawk
)
missing=()
for t in "${!tool_pkg[@]}"; do
    command -v "$t" >/dev/null || missing+=("${tool_pkg[$t]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# --- 2. kernel packages into the cache --------------------------------------

# Is the extracted tree complete?  Sets kver612 (e.g. 6.12.117+deb12-amd64).
tree_complete() {
    local h
    kver612=
    for h in "$root"/usr/src/linux-headers-6.12.*-amd64; do
        [ -f "$h/Makefile" ] || continue
        kver612=${h##*/linux-headers-}
    done
    [ -n "$kver612" ] || return 1
    local abi=${kver612%-amd64}                      # 6.12.117+deb12
    [ -f "$root/usr/src/linux-headers-$abi-common/Makefile" ] &&
    [ -x "$root/usr/lib/linux-kbuild-$abi/tools/objtool/objtool.real-x86" ] &&
    [ -x "$root/usr/lib/linux-kbuild-6.1/tools/objtool/objtool" ] &&
    [ -f "$root/.kbuild-6.1-version" ]
}

# Newest 6.12.<v>+deb12 ABI whose kbuild, headers-amd64 and headers-common
# packages are all downloadable (ALTCFI_KVER_612 first if set).
pick_612() {
    local v pkgs
    for v in ${ALTCFI_KVER_612:-} $(apt-cache pkgnames linux-kbuild-6.12. 2>/dev/null |
            sed -n 's/^linux-kbuild-\(6\.12\.[0-9]*+deb12\)$/\1/p' | sort -rV); do
        pkgs="linux-kbuild-$v linux-headers-$v-amd64 linux-headers-$v-common"
        if apt_has "linux-kbuild-$v" && apt_has "linux-headers-$v-amd64" &&
           apt_has "linux-headers-$v-common"; then
            echo "$v"; return 0
        fi
        [ "$v" = "${ALTCFI_KVER_612:-}" ] && log "ALTCFI_KVER_612=$v not available ($pkgs); using newest"
    done
    return 1
}

fetch_and_extract() {
    apt_update_once
    local abi pkg deb
    abi=$(pick_612) || die "no complete set of linux-kbuild-6.12.<v>+deb12, linux-headers-6.12.<v>+deb12-amd64, linux-headers-6.12.<v>+deb12-common in apt (bookworm + bookworm-security needed)"
    apt_has linux-kbuild-6.1 || die "linux-kbuild-6.1 not available in apt"
    mkdir -p "$debs"
    for pkg in "linux-kbuild-$abi" "linux-headers-$abi-amd64" \
               "linux-headers-$abi-common" linux-kbuild-6.1; do
        # Keep an already downloaded .deb (e.g. after an interrupted run).
        if ! compgen -G "$debs/${pkg}_*.deb" >/dev/null; then
            log "apt-get download $pkg"
            # APT::Sandbox::User=root: the cache dir need not be readable by _apt.
            (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") \
                || die "apt-get download $pkg failed"
        fi
    done
    # Unpack into a scratch dir and move into place, so an interrupted run
    # never leaves a half-extracted tree that looks complete.
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    for pkg in "linux-kbuild-$abi" "linux-headers-$abi-amd64" \
               "linux-headers-$abi-common" linux-kbuild-6.1; do
        deb=$(compgen -G "$debs/${pkg}_*.deb" | sort -V | tail -n1)
        dpkg -x "$deb" "$root.tmp"
    done
    # Remember the 6.1 package version (the tree itself does not name it);
    # $deb is the linux-kbuild-6.1 package, the last one of the loop.
    dpkg-deb -f "$deb" Version > "$root.tmp/.kbuild-6.1-version"
    # Absolute symlinks (lib/modules/<kver>/{build,source} -> /usr/src/...)
    # would leave the cache; make them relative links inside it.
    local link target
    while IFS= read -r -d '' link; do
        target=$(readlink "$link")
        ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root.tmp$target")" "$link"
    done < <(find "$root.tmp" -type l -lname '/*' -print0)
    rm -rf "$root"
    mv "$root.tmp" "$root"
}

if tree_complete; then
    fetched=no
else
    fetch_and_extract
    tree_complete || die "extracted tree in $root is incomplete (missing objtool or headers)"
    fetched=yes
fi

abi612=${kver612%-amd64}
kheaders=$root/usr/src/linux-headers-$kver612
objtool612=$root/usr/lib/linux-kbuild-$abi612/tools/objtool/objtool.real-x86
objtool61=$root/usr/lib/linux-kbuild-6.1/tools/objtool/objtool
kver61=$(cat "$root/.kbuild-6.1-version" 2>/dev/null || echo unknown)

# The -amd64 headers Makefile is one line: `include /usr/src/linux-headers-<abi>-common/Makefile`.
# Point it into the cache (rewritten every run, so a moved cache keeps working).
want="include $root/usr/src/linux-headers-$abi612-common/Makefile"
if [ "$(cat "$kheaders/Makefile")" != "$want" ]; then
    grep -q '^include .*/linux-headers-.*-common/Makefile$' "$kheaders/Makefile" \
        || die "unexpected $kheaders/Makefile: $(head -c 200 "$kheaders/Makefile")"
    echo "$want" > "$kheaders/Makefile"
fi

# --- 3. shared libraries of the binaries we run ------------------------------
# (objtool needs libelf1 and zlib1g; the kbuild helpers only libc.)
declare -A lib_pkg=(
    [libelf.so.1]=libelf1
    [libz.so.1]=zlib1g
    [libcrypto.so.3]=libssl3
    [libssl.so.3]=libssl3
)
kb612=$root/usr/lib/linux-kbuild-$abi612
bins=("$objtool612" "$objtool61" "$kb612/scripts/basic/fixdep"
      "$kb612/scripts/mod/modpost.real-lsb-64" "$kb612/scripts/genksyms/genksyms")
missing=()
for b in "${bins[@]}"; do
    [ -x "$b" ] || die "missing binary $b"
    for lib in $(ldd "$b" 2>/dev/null | awk '/not found/ {print $1}'); do
        [ -n "${lib_pkg[$lib]:-}" ] || die "$b needs $lib and deps.sh does not know its package"
        missing+=("${lib_pkg[$lib]}")
    done
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
    for b in "${bins[@]}"; do
        if [[ $(ldd "$b" 2>&1) == *'not found'* ]]; then die "$b still lacks: $(ldd "$b" | grep 'not found')"; fi
    done
fi

# Smoke test: both objtools must start (`--help` prints usage, exits 129).
for b in "$objtool612" "$objtool61"; do
    usage=$("$b" --help 2>&1 || true)
    case $usage in *--orc*) ;; *) die "$b does not run: ${usage:0:300}" ;; esac
done

# --- 4. env file --------------------------------------------------------------
cat > "$envfile.tmp" <<EOF
# Written by scripts/deps.sh — source this file.
OBJTOOL_612=$objtool612
OBJTOOL_61=$objtool61
KHEADERS_612=$kheaders
KVER_612=$kver612
KVER_61=$kver61
EOF
mv "$envfile.tmp" "$envfile"

echo "deps.sh: ok (fetched=$fetched) linux $kver612 + kbuild-6.1 $kver61 in $cache; env: $envfile"
