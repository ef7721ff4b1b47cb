#!/usr/bin/env bash
# scripts/objtool-oracle.sh — run the reference objtool on a copy of an object.
#
#   scripts/objtool-oracle.sh {612|61} {check|orc|dump} OBJ
#
#   check, orc  `objtool --orc $OBJTOOL_FLAGS COPY`; print objtool's warnings
#               (its stderr) on stdout, verbatim except that the temp copy's
#               path is replaced by OBJ as given.  `orc` is an alias.
#   dump        run the above on the copy (its warnings go to stderr), then
#               print `objtool --dump=orc COPY` on stdout.
#
# objtool rewrites its input (adds .orc_unwind etc.), so it only ever sees a
# copy in a temp dir; OBJ is left untouched.
#
# Exit status: 0 when objtool ran, warnings or not; non-zero with a message on
# stderr when objtool itself failed (non-zero exit, e.g. a fatal ELF error or
# an object it cannot parse) or the setup is missing.
#
# Environment:
#   OBJTOOL_FLAGS  extra objtool options for the --orc run, e.g. "--stackval"
#                  or "--module --link" (word-split).
#   ALTCFI_CACHE   cache root used by scripts/deps.sh (default <repo>/.cache).
#
# Both binaries come from Debian packages unpacked by scripts/deps.sh.  They
# run directly: for 6.12 we call tools/objtool/objtool.real-x86 (the sibling
# `objtool` is a wrapper that execs objtool.real-$SRCARCH); the 6.1 package
# ships the x86 binary itself.  No environment variables are needed.
set -euo pipefail

usage() { echo "usage: $0 {612|61} {check|orc|dump} OBJ" >&2; exit 2; }
die() { echo "objtool-oracle: $*" >&2; exit 1; }

[ $# -eq 3 ] || usage
version=$1 mode=$2 obj=$3

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envfile=${ALTCFI_CACHE:-$repo/.cache}/oracle/env
[ -f "$envfile" ] || die "$envfile missing; run scripts/deps.sh first"
# shellcheck disable=SC1090
. "$envfile"

case $version in
    612) objtool=$OBJTOOL_612 ;;
    61)  objtool=$OBJTOOL_61 ;;
    *)   usage ;;
esac
case $mode in check|orc|dump) ;; *) usage ;; esac
[ -x "$objtool" ] || die "$objtool not executable; rerun scripts/deps.sh"
[ -f "$obj" ] || die "no such object: $obj"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/objtool-oracle.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Same basename as OBJ, so objtool's messages read naturally.
copy=$tmp/$(basename "$obj")
cp "$obj" "$copy"
chmod u+w "$copy"

# Replace every occurrence of the copy's path with OBJ (plain string
# replacement, no regex, so any characters in the paths are safe).
unmangle() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "${line//"$copy"/"$obj"}"
    done
}

# --orc run.  objtool prints warnings on stderr, nothing on stdout.
rc=0
# shellcheck disable=SC2086  # OBJTOOL_FLAGS is deliberately word-split
"$objtool" --orc ${OBJTOOL_FLAGS:-} "$copy" >"$tmp/orc.out" 2>"$tmp/orc.err" || rc=$?

if [ "$mode" = dump ]; then
    unmangle <"$tmp/orc.err" >&2
else
    cat "$tmp/orc.out" "$tmp/orc.err" | unmangle
fi
[ "$rc" = 0 ] || die "objtool $version --orc ${OBJTOOL_FLAGS:+$OBJTOOL_FLAGS }failed (exit $rc) on $obj"

if [ "$mode" = dump ]; then
    rc=0
    "$objtool" --dump=orc "$copy" >"$tmp/dump.out" 2>"$tmp/dump.err" || rc=$?
    unmangle <"$tmp/dump.out"
    unmangle <"$tmp/dump.err" >&2
    [ "$rc" = 0 ] || die "objtool $version --dump=orc failed (exit $rc) on $obj"
fi
exit 0
