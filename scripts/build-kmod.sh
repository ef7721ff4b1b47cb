#!/usr/bin/env bash
# scripts/build-kmod.sh — build the tests/kmod out-of-tree module against the
# Debian 6.12 headers unpacked by scripts/deps.sh.
#
#   scripts/build-kmod.sh OUTDIR                   # objects without objtool
#   scripts/build-kmod.sh --kbuild-objtool OUTDIR  # V=1, objtool as kbuild runs it
#
# The sources are copied to OUTDIR (mtimes kept, so a rerun is incremental)
# and built with `make -C $KHEADERS_612 M=OUTDIR modules`.  Afterwards
# OUTDIR/*.o are the objects as gcc/gas left them: objtool is disabled both by
# OBJECT_FILES_NON_STANDARD := y in tests/kmod/Kbuild (per-object runs) and by
# `objtool-enabled=` on the make command line (the run on the linked
# multi-object module altcfi_kmod.o, which that switch does not cover).
#
# --kbuild-objtool builds with V=1 and objtool enabled everywhere, prints the
# objtool command lines kbuild ran, and leaves objtool-processed objects in
# OUTDIR (use a separate OUTDIR).
#
# The final .ko step normally runs pahole for BTF; `CONFIG_DEBUG_INFO_BTF_MODULES=`
# on the command line skips it, so pahole is not needed.
set -euo pipefail

usage() { echo "usage: $0 [--kbuild-objtool] OUTDIR" >&2; exit 2; }
die() { echo "build-kmod: $*" >&2; exit 1; }

kbuild_objtool=0
if [ "${1:-}" = --kbuild-objtool ]; then kbuild_objtool=1; shift; fi
[ $# -eq 1 ] || usage

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envfile=${ALTCFI_CACHE:-$repo/.cache}/oracle/env
[ -f "$envfile" ] || die "$envfile missing; run scripts/deps.sh first"
# shellcheck disable=SC1090
. "$envfile"
[ -f "$KHEADERS_612/Makefile" ] || die "$KHEADERS_612 missing; rerun scripts/deps.sh"

mkdir -p "$1"
out=$(cd "$1" && pwd)          # kbuild wants an absolute M=
src=$repo/tests/kmod
[ "$out" != "$src" ] || die "OUTDIR must not be tests/kmod itself"

# Copy sources (not the README), keeping mtimes for incremental rebuilds.
for f in "$src"/*; do
    case ${f##*/} in README.md) continue ;; esac
    cp -p "$f" "$out/"
done

make_args=(-C "$KHEADERS_612" M="$out" -j"$(nproc)" CONFIG_DEBUG_INFO_BTF_MODULES=)
if [ "$kbuild_objtool" = 1 ]; then
    # Force a full rebuild so every objtool command is shown.
    rm -f "$out"/*.o "$out"/.*.o.cmd
    make "${make_args[@]}" ALTCFI_KBUILD_OBJTOOL=1 V=1 modules > "$out/build-v1.log" 2>&1 \
        || { tail -n 30 "$out/build-v1.log" >&2; die "make failed; see $out/build-v1.log"; }
    echo "objtool commands run by kbuild (full log: $out/build-v1.log):"
    # cmd_objtool is appended to the compile/link command after "; ".
    grep -o '; [^;]*tools/objtool/objtool [^;]*' "$out/build-v1.log" | sed 's/^; *//' | sort -u
else
    make "${make_args[@]}" objtool-enabled= modules
fi

echo "build-kmod: objects in $out:"
(cd "$out" && ls -1 -- *.o)
