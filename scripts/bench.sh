#!/usr/bin/env bash
# scripts/bench.sh — altcfi vs objtool 6.12, side by side, in one run.
#
#   bash scripts/bench.sh [--quick] [--sizes "256 1024 4096 16384"] [--runs N] [--out DIR]
#
# Builds altcfi (release), fetches objtool 6.12 (scripts/deps.sh), installs hyperfine (apt, once), builds the
# corpus (test fixtures, the tests/kmod module objects, generated objects of the given .text sizes in KiB from
# scripts/gen-big-asm.py), then times on every object or object group, with hyperfine (medians):
#   objtool 6.12 --orc on a fresh copy (copied in hyperfine's --prepare step, not timed),
#   altcfi check --no-source, altcfi check (source locations for findings), altcfi orc,
# measures peak RSS of each (GNU time, median of 3), checks that altcfi's ORC equals objtool's for the generated
# objects, and writes the table to DIR/report.md (default target/bench) and stdout.
#
# --quick: sizes 256 1024, 3 runs (a smoke run). Environment: ALTCFI_BENCH_RUNS overrides --runs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

sizes="256 1024 4096 16384"
runs=${ALTCFI_BENCH_RUNS:-10}
out=$repo/target/bench
while [ $# -gt 0 ]; do
    case $1 in
        --quick) sizes="256 1024"; runs=3 ;;
        --sizes) sizes=$2; shift ;;
        --runs) runs=$2; shift ;;
        --out) out=$2; shift ;;
        *) echo "usage: $0 [--quick] [--sizes \"KiB...\"] [--runs N] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "bench.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v hyperfine >/dev/null; then
    log "installing hyperfine"
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hyperfine >/dev/null
fi
[ -x /usr/bin/time ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null

bash scripts/deps.sh >&2
log "building altcfi (release)"
cargo build --release -q -p altcfi
mkdir -p "$out"
cp target/release/altcfi "$out/altcfi"   # a private copy: other builds may replace target/release/altcfi meanwhile

log "building the kernel-module objects"
bash scripts/build-kmod.sh "$out/kmod-build" >/dev/null

exec python3 scripts/bench.py --altcfi "$out/altcfi" --out "$out" --runs "$runs" --sizes $sizes \
    --kmod "$out/kmod-build"
