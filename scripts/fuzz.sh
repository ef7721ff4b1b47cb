#!/bin/sh
# Fuzz altcfi's analysis library: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each cargo-fuzz target under fuzz/ (analyze, special, lines by default) for SECONDS (default 600) in one
# process (libFuzzer's default; no -jobs, so the machine's other core stays free), one after the other, after seeding fuzz/corpus/<target>/ from the test fixtures (built here, never committed).
# Needs a nightly toolchain (rustup) and cargo-fuzz (installed with `cargo install --locked cargo-fuzz` if missing).
# Crashes land in fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Environment: FUZZ_RSS_MB (default 2048) is libFuzzer's -rss_limit_mb, FUZZ_TIMEOUT (default 10) its -timeout per
# input in seconds, FUZZ_MAX_LEN (default 262144) its -max_len. See docs/robustness.md.
set -eu

secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-analyze special lines}
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz=$root/fuzz
cc=${CC:-gcc}

if ! rustup toolchain list | grep '^nightly' >/dev/null; then
	echo "fuzz.sh: installing a nightly toolchain (cargo-fuzz needs -Zsanitizer)" >&2
	rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz" >&2
	cargo install --locked cargo-fuzz
fi

# Seeds: every fixture object, in the layouts each target cares about.
seed() {
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	for t in analyze special lines; do mkdir -p "$fuzz/corpus/$t"; done
	for src in "$root"/tests/fixtures/core/*.S "$root"/tests/fixtures/core/*.c \
		"$root"/tests/fixtures/alt/*.S "$root"/tests/fixtures/alt/*.c; do
		[ -e "$src" ] || continue
		obj=$(sh "$root/tests/fixtures/build.sh" "$src" "$tmp/fx") || {
			echo "fuzz.sh: warning: could not build $src" >&2
			continue
		}
		name=$(basename "$obj")
		cp "$obj" "$fuzz/corpus/analyze/$name"
		# special: only objects that have special sections or hints are interesting.
		if grep -qa -e altinstructions -e __jump_table -e __ex_table -e unwind_hints "$obj"; then
			cp "$obj" "$fuzz/corpus/special/$name"
		fi
	done
	# lines: the DWARF fixtures, in both DWARF versions, with and without -ffunction-sections; and a few
	# assembler fixtures with -g.
	mkdir -p "$tmp/lines"
	cp "$root"/tests/fixtures/lines/* "$tmp/lines/"
	for src in inline.c split.c wrapper.c macros.S; do
		for v in 4 5; do
			for fs in "" -ffunction-sections; do
				out="$fuzz/corpus/lines/${src%.*}-dwarf$v${fs:+-fs}.o"
				(cd "$tmp/lines" && $cc -O2 -g -gdwarf-$v $fs -c "$src" -o "$out") ||
					echo "fuzz.sh: warning: could not build $src with DWARF $v" >&2
			done
		done
	done
	for src in "$root"/tests/fixtures/alt/*.S; do
		[ -e "$src" ] || continue
		b=$(basename "$src" .S)
		$cc -g -c "$src" -o "$fuzz/corpus/lines/$b-g.o" 2>/dev/null || true
		cp "$fuzz/corpus/lines/$b-g.o" "$fuzz/corpus/analyze/$b-g.o" 2>/dev/null || true
	done
	rm -rf "$tmp"
	trap - EXIT
}

seed
echo "fuzz.sh: seeds: $(ls "$fuzz/corpus/analyze" | wc -l) analyze, $(ls "$fuzz/corpus/special" | wc -l) special, $(ls "$fuzz/corpus/lines" | wc -l) lines" >&2

status=0
for t in $targets; do
	echo "fuzz.sh: $t for ${secs}s" >&2
	(cd "$fuzz" && cargo +nightly fuzz run "$t" -- \
		-max_total_time="$secs" \
		-rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}" \
		-max_len="${FUZZ_MAX_LEN:-262144}" -print_final_stats=1) || {
		echo "fuzz.sh: $t found a crash: see fuzz/artifacts/$t/" >&2
		status=1
	}
done
exit $status
