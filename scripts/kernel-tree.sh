#!/usr/bin/env bash
# scripts/kernel-tree.sh — build a subset of a real Linux tree (Debian's linux-source-6.12 or linux-source-6.1) for
# the real-tree differential (tests/kernel_tree.rs, scripts/kernel-diff.sh) and the editor tests.
#
#   bash scripts/kernel-tree.sh GEN CONFIG [DIR...]
#
#   GEN     6.12 | 6.1
#   CONFIG  noibt  kbuild runs objtool on every object (CONFIG_X86_KERNEL_IBT off): the objects carry .orc_unwind,
#                  the build log carries objtool's warnings
#           ibt    CONFIG_X86_KERNEL_IBT on (x86_64_defconfig's default in 6.12): kbuild never runs objtool per
#                  object; the objects are as gcc/as left them
#           intree the noibt configuration built in the source tree itself (no O=), as most developers build: in a
#                  copy of the unpacked tree made of hard links, <cache>/kernel/GEN-intree (default DIR:
#                  arch/x86/entry/ only)
#   DIR     kbuild directories to build (default: arch/x86/entry/ arch/x86/xen/ arch/x86/lib/ kernel/sched/)
#
# The source tree is unpacked once per generation into <cache>/kernel/src-GEN (never built in: every build is an O=
# build directory <cache>/kernel/GEN-CONFIG, which also holds compile_commands.json, .config, `source`, build.log;
# except for `intree`, whose tree is its own build directory).
# Prints the build directory on stdout. Idempotent: a finished build with the same directory list is not redone.
#
# Environment: ALTCFI_CACHE (default <repo>/.cache), JOBS (default: nproc), ALTCFI_TREE_TAG (a suffix for the build
# directory, for a second build of the same generation and configuration with other directories, e.g. `whole`).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${ALTCFI_CACHE:-$repo/.cache}/kernel
gen=${1:?usage: kernel-tree.sh 6.12|6.1 ibt|noibt [DIR...]}
config=${2:?usage: kernel-tree.sh 6.12|6.1 ibt|noibt [DIR...]}
shift 2
dirs=("$@")
if [ "${#dirs[@]}" -eq 0 ]; then
    if [ "$config" = intree ]; then dirs=(arch/x86/entry/); else dirs=(arch/x86/entry/ arch/x86/xen/ arch/x86/lib/ kernel/sched/); fi
fi
jobs=${JOBS:-$(nproc)}

log() { echo "kernel-tree.sh: $*" >&2; }
die() { echo "kernel-tree.sh: error: $*" >&2; exit 1; }

case $gen in 6.12 | 6.1) ;; *) die "GEN must be 6.12 or 6.1, not '$gen'" ;; esac
case $config in ibt | noibt | intree) ;; *) die "CONFIG must be ibt, noibt or intree, not '$config'" ;; esac

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# --- build tools ---------------------------------------------------------------
declare -A tool_pkg=([make]=make [flex]=flex [bison]=bison [bc]=bc [xz]=xz-utils [perl]=perl [python3]=python3
                     [dpkg-deb]=dpkg)
missing=()
for t in "${!tool_pkg[@]}"; do command -v "$t" >/dev/null || missing+=("${tool_pkg[$t]}"); done
[ -f /usr/include/gelf.h ] || missing+=(libelf-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
mkdir -p "$cache"
# Concurrent runs (one test per generation) take turns for apt, the unpacking of a generation and each build.
exec 8>"$cache/.lock-apt"
flock 8
apt_updated=0
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >/dev/null || die "apt-get update failed"
    apt_updated=1
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install failed for: ${missing[*]}"
fi

# --- the source tree -----------------------------------------------------------
src=$cache/src-$gen
exec 9>"$cache/.lock-src-$gen"
flock 9
if [ ! -f "$src/.altcfi-complete" ]; then
    mkdir -p "$cache/debs"
    if ! compgen -G "$cache/debs/linux-source-${gen}_*.deb" >/dev/null; then
        if [ "$apt_updated" = 0 ]; then
            log "apt-get update"
            as_root apt-get update -qq >/dev/null || die "apt-get update failed"
        fi
        log "apt-get download linux-source-$gen (~150 MB)"
        (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "linux-source-$gen") \
            || die "apt-get download linux-source-$gen failed"
    fi
    deb=$(compgen -G "$cache/debs/linux-source-${gen}_*.deb" | sort -V | tail -n1)
    rm -rf "$src" "$src.tmp" "$cache/deb-$gen"
    log "unpacking $(basename "$deb")"
    dpkg -x "$deb" "$cache/deb-$gen"
    tarball=$(compgen -G "$cache/deb-$gen/usr/src/linux-source-$gen*.tar.*" | head -n1)
    [ -n "$tarball" ] || die "no source tarball in $deb"
    mkdir -p "$src.tmp"
    tar xf "$tarball" -C "$src.tmp" --strip-components=1
    rm -rf "$cache/deb-$gen"
    dpkg-deb -f "$deb" Version > "$src.tmp/.altcfi-debian-version"
    touch "$src.tmp/.altcfi-complete"
    mv "$src.tmp" "$src"
fi
flock -u 9
flock -u 8

# --- configure and build ---------------------------------------------------------
out=$cache/$gen-$config${ALTCFI_TREE_TAG:+-$ALTCFI_TREE_TAG}
mkdir -p "$out"
exec 7>"$cache/.lock-build-${out##*/}"
flock 7

stamp="dirs: ${dirs[*]}"
if [ -f "$out/.altcfi-built" ] && [ "$(cat "$out/.altcfi-built")" = "$stamp" ]; then
    echo "$out"
    exit 0
fi
rm -f "$out/.altcfi-built"
kmake() { make -C "$src" O="$out" -j"$jobs" "$@"; }
if [ "$config" = intree ]; then
    # The tree is the build directory: a copy of the unpacked sources made of hard links (kbuild writes new files
    # next to them and never rewrites a source in place), so the shared tree stays clean for the O= builds.
    if [ ! -f "$out/.altcfi-copied" ]; then
        log "copying the $gen sources for an in-tree build"
        rm -rf "$out"
        cp -al "$src" "$out"
        touch "$out/.altcfi-copied"
    fi
    src=$out
    kmake() { make -C "$out" -j"$jobs" "$@"; }
fi
if [ ! -f "$out/.config" ]; then
    log "configuring $gen-$config"
    kmake x86_64_defconfig >/dev/null
    ibt=-d
    [ "$config" = ibt ] && ibt=-e
    "$src/scripts/config" --file "$out/.config" -e UNWINDER_ORC -d UNWINDER_FRAME_POINTER -e DEBUG_INFO \
        -d DEBUG_INFO_NONE -e DEBUG_INFO_DWARF5 -e PARAVIRT -e XEN -e XEN_PV -e KVM_GUEST -e KVM -e KVM_INTEL \
        $ibt X86_KERNEL_IBT -d WERROR
    kmake olddefconfig >/dev/null
fi
log "make prepare ($gen-$config)"
kmake prepare >"$out/prepare.log" 2>&1 || { tail -n 30 "$out/prepare.log" >&2; die "make prepare failed"; }
log "make ${dirs[*]} ($gen-$config)"
# The build log keeps objtool's warnings (the noibt differential compares them).
kmake "${dirs[@]}" >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; die "make ${dirs[*]} failed"; }
python3 "$src/scripts/clang-tools/gen_compile_commands.py" -d "$out" -o "$out/compile_commands.json" \
    >/dev/null 2>&1 || log "gen_compile_commands.py failed (compile_commands.json missing)"
echo "$stamp" > "$out/.altcfi-built"
echo "$out"
