#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/deps.sh, idempotent), then formatting, lints and
# every test. .ci/run calls this script. Ends with one "N passed, N failed" line over all test binaries.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/deps.sh
bash scripts/deps-sarif.sh >/dev/null || echo "test.sh: the SARIF validator could not be installed: tests/sarif.rs will fail" >&2
# Neovim 0.11 for tests/lsp.rs's real-client test and the editor tests.
ALTCFI_NVIM=$(bash scripts/deps-nvim.sh)
export ALTCFI_NVIM
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?
bash scripts/editors-test.sh 2>&1 | tee -a "$log" || status=$?  # VS Code + Neovim; its "test result:" line is counted below
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '^test result: .* ([0-9]+) failed' "$log" | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
