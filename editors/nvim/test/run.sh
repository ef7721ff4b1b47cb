#!/usr/bin/env bash
# Headless Neovim test of the plugin against the real `altcfi lsp`: builds a temporary workspace with
# examples/demo.S and examples/strict-only.S, their objects (gcc -c -g) and compile_commands.json, then runs test/lsp_test.lua once through
# require('altcfi').setup{} and once through vim.lsp.enable('altcfi').
# Usage: run.sh NVIM ALTCFI_BIN. Prints one "ok"/"FAIL" line per check; exits non-zero on any failure.
set -euo pipefail
nvim=$(realpath "$(command -v "$1")")
bin=$(realpath "$2")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
ws=$(mktemp -d /tmp/altcfi-nvim-ws.XXXXXX)
trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/examples" "$ws/tests/fixtures/alt" "$ws/build"
cp "$repo/examples/demo.S" "$repo/examples/strict-only.S" "$ws/examples/"
cp "$repo"/tests/fixtures/alt/*.h "$ws/tests/fixtures/alt/"
(cd "$ws" && gcc -c -g examples/demo.S -o build/demo.o && gcc -c -g examples/strict-only.S -o build/strict-only.o)
cat > "$ws/compile_commands.json" <<JSON
[
  {
    "directory": "$ws",
    "arguments": ["gcc", "-c", "-g", "examples/demo.S", "-o", "build/demo.o"],
    "file": "examples/demo.S",
    "output": "build/demo.o"
  },
  {
    "directory": "$ws",
    "arguments": ["gcc", "-c", "-g", "examples/strict-only.S", "-o", "build/strict-only.o"],
    "file": "examples/strict-only.S",
    "output": "build/strict-only.o"
  }
]
JSON
status=0
for mode in setup enable; do
    out="$ws/result-$mode.txt"
    rm -f "$out"
    rc=0
    (cd "$ws" && ALTCFI_PLUGIN="$here" ALTCFI_BIN="$bin" ALTCFI_WS="$ws" ALTCFI_MODE="$mode" ALTCFI_OUT="$out" \
        timeout 150 "$nvim" --headless --clean -u "$here/test/lsp_test.lua" >"$ws/nvim-$mode.log" 2>&1) || rc=$?
    if [[ -f $out ]]; then
        cat "$out"
    else
        echo "FAIL $mode: nvim exited ($rc) without results"
        cat "$ws/nvim-$mode.log"
    fi
    if [[ $rc -ne 0 ]] || [[ ! -f $out ]] || grep -q '^FAIL' "$out"; then
        status=1
        if [[ -n ${ALTCFI_NVIM_LOG:-} ]]; then cat "$ws/nvim-$mode.log"; fi
    fi
done
exit "$status"
