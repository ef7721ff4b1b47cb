#!/usr/bin/env bash
# What the VS Code end-to-end test (editors/vscode/e2e/) needs: code-server (VS Code for the web, from npm), Debian's
# Chromium and playwright-core to drive it. Idempotent and cached:
#
# - apt: only when a package is missing (apt-get update before the first install);
# - npm: code-server and playwright-core in .cache/vscode-e2e/, skipped when its stamp file names the same versions
#   (and Node ABI) and the key files are there. A partial tree is removed and installed again.
#
# The recipe is ../shared/reference/vscode-e2e.md's: code-server 4.100.x is the last line that runs on Node 20; its
# postinstall would download ripgrep from GitHub, so scripts are skipped, the native modules rebuilt from source
# (node-gyp with the system's Node headers), and Debian's ripgrep linked in where @vscode/ripgrep looks.
#
# Prints progress on stderr and, on stdout, the cache directory (the test reads code-server and playwright-core from
# there). Exits non-zero with a message on any failure.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$repo/.cache/vscode-e2e"
code_server_version=4.100.3
playwright_version=1.64.1
apt_packages=(libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev ripgrep chromium)
say() { echo "vscode-e2e-deps: $*" >&2; }
die() { say "error: $*"; exit 1; }
mkdir -p "$cache"
# One installer at a time (two suites in one tree would otherwise race on the same node_modules).
exec 9>"$cache/.lock"
flock 9
start=$SECONDS

# --- Debian packages
missing=()
for p in "${apt_packages[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
    asudo=()
    [[ $(id -u) -ne 0 ]] && asudo=(sudo)
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${asudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    "${asudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
    say "apt done in $((SECONDS - start)) s"
else
    say "apt packages present (${apt_packages[*]})"
fi
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium missing after install"
[[ -x /usr/bin/rg ]] || die "/usr/bin/rg missing after install"

# --- npm: code-server + playwright-core
want="code-server=$code_server_version playwright-core=$playwright_version node=$(node -p 'process.versions.modules')"
stamp="$cache/stamp"
vs="$cache/node_modules/code-server/lib/vscode"
complete() {
    [[ -f $stamp && $(cat "$stamp") == "$want" ]] &&
        [[ -f $cache/node_modules/code-server/out/node/entry.js ]] &&
        [[ -f $cache/node_modules/playwright-core/package.json ]] &&
        [[ -e $vs/node_modules/@vscode/ripgrep/bin/rg ]] &&
        [[ -e $vs/node_modules.asar ]] &&
        [[ -n $(find "$vs/node_modules/node-pty/build" -name pty.node 2>/dev/null) ]] &&
        [[ -n $(find "$vs/node_modules/@vscode/spdlog/build" -name '*.node' 2>/dev/null) ]] &&
        [[ -n $(find "$cache/node_modules/argon2" -name '*.node' 2>/dev/null) ]]
}
if complete; then
    say "npm tree up to date ($want)"
else
    npm_start=$SECONDS
    say "npm install code-server@$code_server_version playwright-core@$playwright_version into $cache"
    rm -rf "$cache/node_modules" "$cache/package.json" "$cache/package-lock.json" "$stamp"
    log="$cache/install.log"
    : >"$log"
    run() { echo "+ $*" >>"$log"; "$@" >>"$log" 2>&1; }
    cat >"$cache/package.json" <<EOF
{"name": "altcfi-vscode-e2e", "private": true, "description": "scripts/vscode-e2e-deps.sh"}
EOF
    (cd "$cache" && run npm install --ignore-scripts --no-audit --no-fund --prefer-offline \
        "code-server@$code_server_version" "playwright-core@$playwright_version") ||
        { tail -n 30 "$log" >&2; die "npm install failed (log: $log)"; }
    (cd "$vs" && run npm install --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline) ||
        { tail -n 30 "$log" >&2; die "npm install in code-server's lib/vscode failed (log: $log)"; }
    # node-pty's own post-install step fails after pty.node is built (a compile_commands step); the binary works, so
    # success is judged by the files below, not by npm's status.
    (cd "$vs" && run npm rebuild @vscode/spdlog @parcel/watcher node-pty native-watchdog @vscode/deviceid kerberos) ||
        say "npm rebuild in lib/vscode reported an error (expected from node-pty's post-install step)"
    mkdir -p "$vs/node_modules/@vscode/ripgrep/bin"
    ln -sfn /usr/bin/rg "$vs/node_modules/@vscode/ripgrep/bin/rg"
    ln -sfn node_modules "$vs/node_modules.asar"
    (cd "$cache" && run npm rebuild argon2 --build-from-source) ||
        { tail -n 30 "$log" >&2; die "npm rebuild argon2 failed (log: $log)"; }
    echo "$want" >"$stamp"
    say "npm done in $((SECONDS - npm_start)) s"
    complete || { rm -f "$stamp"; tail -n 30 "$log" >&2; die "the install is incomplete (log: $log)"; }
fi
say "ready in $((SECONDS - start)) s"
echo "$cache"
