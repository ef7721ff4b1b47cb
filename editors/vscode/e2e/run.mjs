// End-to-end test of the VS Code extension in a real VS Code: code-server (VS Code for the web) on a loopback port,
// driven in headless Chromium by playwright-core. It sees what a user sees:
//
//   1. the freshly built .vsix installs into a throwaway extensions directory;
//   2. the workbench loads a temporary workspace holding examples/demo.S, the headers it includes, its object
//      (gcc -c -g) and a compile_commands.json, with `altcfi.server.path` pointing at the debug altcfi binary;
//   3. opening demo.S, the Problems panel lists the alternatives conflict on the ALTERNATIVE line of save_fl_bad
//      with altcfi's message, and the editor draws the error squiggle (screenshot: vscode-conflict.png);
//   4. the hover on that line shows both sides' CFI (screenshot: vscode-hover.png);
//   5. "altcfi: Show CFI table" from the command palette opens the read-only table of save_fl_bad;
//   6. after the source is fixed on disk and the object rebuilt, the problem disappears;
//   7. live mode: the conflicting replacement typed back without saving is a problem marked `altcfi (unsaved)` on
//      its line, undo clears it; typed again, the quick fix (Ctrl+.) is applied, the unsaved text is clean, and once
//      saved and rebuilt both `altcfi check` and objtool 6.12 find the site clean (screenshot: vscode-quickfix.png);
//   8. examples/strict-only.S, whose conflict objtool reports but the unwinder survives: a warning (not an error)
//      whose hover names the field that differs and the verdict (screenshot: vscode-strict-only.png);
//   9. a kernel developer's first file: the 6.12 source tree of scripts/kernel-tree.sh (its build is out of tree,
//      `O=`, and there is no setting) opened as the workspace, arch/x86/entry/entry_64.S opened first through the
//      file dialog: the status item names the rules and the object, the UNTRAIN_RET line has its code lens and its
//      ORC inlay hint, and its hover shows the sites with call targets by name (screenshot: vscode-kernel.png).
//
// Usage: node editors/vscode/e2e/run.mjs   (scripts/editors-test.sh runs it after scripts/vscode-e2e-deps.sh)
// Environment: ALTCFI_E2E_KERNEL (the kernel source tree, default .cache/kernel/src-6.12), ALTCFI_E2E_CACHE (default
// .cache/vscode-e2e), ALTCFI_BIN (default $CARGO_TARGET_DIR|target
// /debug/altcfi), ALTCFI_VSIX (default editors/vscode/altcfi.vsix), ALTCFI_E2E_OUT (artefacts, default
// target/vscode-e2e), ALTCFI_E2E_TIMEOUT (seconds for the whole run, default 360), ALTCFI_E2E_KEEP=1 keeps the
// temporary directories.
//
// Every check is counted, also those not reached after a failure, so the closing "N passed, N failed" line always
// covers the same checks. Exit status 0 only if all passed. code-server (its whole process group, the extension host
// and the language server with it) and Chromium are ended on every path, a timeout included.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.resolve(here, '..');
const repo = path.resolve(ext, '../..');
const cache = process.env.ALTCFI_E2E_CACHE || path.join(repo, '.cache/vscode-e2e');
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
const altcfi = process.env.ALTCFI_BIN || path.join(targetDir, 'debug/altcfi');
const vsix = process.env.ALTCFI_VSIX || path.join(ext, 'altcfi.vsix');
const outDir = process.env.ALTCFI_E2E_OUT || path.join(targetDir, 'vscode-e2e');
const globalTimeout = Number(process.env.ALTCFI_E2E_TIMEOUT || 360) * 1000;
const kernelTree = process.env.ALTCFI_E2E_KERNEL || path.join(repo, '.cache/kernel/src-6.12');
const keep = process.env.ALTCFI_E2E_KEEP === '1';
const chromiumPath = process.env.ALTCFI_CHROMIUM || '/usr/bin/chromium';
const t0 = Date.now();

const CHECKS = [
    'setup: code-server, playwright-core, chromium, altcfi binary and .vsix present',
    'setup: workspace with demo.S, its object and compile_commands.json',
    'install the .vsix with code-server --install-extension',
    'code-server serves the workbench with the workspace open',
    'demo.S opens in an editor',
    'Problems panel: the conflict on line 21 (save_fl_bad ALTERNATIVE) with altcfi\'s message',
    'editor: error squiggle on line 21',
    'status bar: the altcfi item names the rules, the object and the finding',
    'editor: code lens "conflict at +0x2" above line 21 and inlay hint "alt conflict" after it',
    'hover on line 21 shows the CFI of both sides (rsp+8, rsp+24)',
    'command palette "altcfi: Show CFI table" opens the table of save_fl_bad',
    'source fixed and object rebuilt: the conflict disappears',
    'live: the conflicting replacement typed (not saved) is an "altcfi (unsaved)" problem on line 21; undo clears it',
    'quick fix (Ctrl+.) "…the site becomes clean" applied: clean unsaved, and after save + build for altcfi and objtool',
    'strict-only.S: the conflict is a warning saying strict-only; its hover names "stack size 16 vs 24" and unwind ✓',
    'kernel tree: entry_64.S of the 6.12 source (O= build, no setting) opened first, in the tree as the workspace',
    'kernel tree: status item with the 6.12 rules and the object, code lens and ORC hint on the UNTRAIN_RET line',
    'kernel tree: hover on the UNTRAIN_RET line shows its sites with call targets by name',
];
const results = new Map();
let next = 0;
let aborted = null;

function elapsed() {
    return ((Date.now() - t0) / 1000).toFixed(1) + ' s';
}
function log(msg) {
    console.log(`[${elapsed()}] ${msg}`);
}

/** Runs the next check of CHECKS; after a failure the remaining ones are counted as failed, not run. */
async function check(name, fn) {
    if (CHECKS[next] !== name) {
        throw new Error(`check out of order: ${name} (expected ${CHECKS[next]})`);
    }
    next++;
    if (aborted !== null) {
        results.set(name, { ok: false, msg: `not run: "${aborted}" failed` });
        return;
    }
    const start = Date.now();
    try {
        const note = await fn();
        results.set(name, { ok: true });
        console.log(`ok    ${name}${note ? ` (${note})` : ''} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
    } catch (e) {
        aborted = name;
        results.set(name, { ok: false, msg: e instanceof Error ? e.message : String(e) });
        console.log(`FAIL  ${name}: ${e instanceof Error ? e.message : String(e)}`);
        await failureArtefacts(name);
    }
}

/** Polls `fn` until it returns a truthy value; throws with `what` and the last value or error on timeout. */
async function until(what, fn, timeoutMs = 30000, everyMs = 200) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) {
                return v;
            }
            last = v;
        } catch (e) {
            last = e instanceof Error ? e.message : String(e);
        }
        if (Date.now() > end) {
            const shown = typeof last === 'string' ? last : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last: ${shown?.slice(0, 800)}`);
        }
        await new Promise((r) => setTimeout(r, everyMs));
    }
}

function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
    if (r.status !== 0) {
        throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stdout}${r.stderr}`);
    }
    return r.stdout + r.stderr;
}

// --- state shared with cleanup
let tmp = null;
let codeServer = null;
let codeServerLog = '';
let browser = null;
let page = null;
let userData = null;

async function failureArtefacts(name) {
    if (page !== null) {
        const file = path.join(outDir, 'failure-' + name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60) + '.png');
        try {
            await page.screenshot({ path: file, timeout: 10000 });
            console.log(`      screenshot: ${file}`);
        } catch {
            // The page may be gone.
        }
    }
    printServerLogs();
}

/** The language server's log (the extension's "altcfi" output channel, which carries the server's stderr and its
 * window/logMessage lines), the extension host's log and code-server's own output. */
function printServerLogs() {
    const tail = (text, n) => text.split('\n').filter((l) => l.trim() !== '').slice(-n).join('\n');
    if (userData !== null) {
        const logs = [];
        const walk = (d) => {
            for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
                const p = path.join(d, e.name);
                if (e.isDirectory()) {
                    walk(p);
                } else if (/altcfi|exthost\.log|remoteexthost\.log/i.test(e.name)) {
                    logs.push(p);
                }
            }
        };
        walk(path.join(userData, 'logs'));
        for (const p of logs) {
            console.log(`----- ${p} (last 80 lines)`);
            console.log(tail(fs.readFileSync(p, 'utf8'), 80));
        }
        if (logs.length === 0) {
            console.log(`----- no altcfi or extension-host log under ${path.join(userData, 'logs')}`);
        }
    }
    if (codeServerLog !== '') {
        console.log('----- code-server output (last 40 lines)');
        console.log(tail(codeServerLog, 40));
    }
    console.log('-----');
}

let cleaned = false;
async function cleanup() {
    if (cleaned) {
        return;
    }
    cleaned = true;
    if (browser !== null) {
        await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    }
    if (codeServer !== null && codeServer.exitCode === null && codeServer.signalCode === null) {
        const pgid = codeServer.pid;
        const gone = new Promise((r) => codeServer.once('exit', r));
        try {
            process.kill(-pgid, 'SIGTERM');
        } catch {
            // Already gone.
        }
        const exited = await Promise.race([gone.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
        if (!exited) {
            log('code-server did not end on SIGTERM; SIGKILL');
        }
        try {
            // The group: whatever code-server started (extension host, altcfi lsp) that is still around.
            process.kill(-pgid, 'SIGKILL');
        } catch {
            // Nothing left.
        }
    }
    if (tmp !== null && !keep) {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

function summary() {
    let passed = 0;
    let failed = 0;
    for (const name of CHECKS) {
        const r = results.get(name);
        if (r === undefined) {
            failed++;
            console.log(`FAIL  ${name}: not run (${aborted ?? 'ended early'})`);
        } else if (r.ok) {
            passed++;
        } else {
            failed++;
            if (r.msg.startsWith('not run')) {
                console.log(`FAIL  ${name}: ${r.msg}`);
            }
        }
    }
    console.log(`vscode e2e: ${passed} passed, ${failed} failed (${elapsed()}; artefacts in ${outDir})`);
    return failed;
}

const timer = setTimeout(() => {
    void (async () => {
        console.log(`FAIL  global timeout of ${globalTimeout / 1000} s reached during "${CHECKS[Math.max(next - 1, 0)]}"`);
        aborted = aborted ?? `global timeout (${globalTimeout / 1000} s)`;
        for (let i = Math.max(next - 1, 0); i < CHECKS.length; i++) {
            if (!results.get(CHECKS[i])?.ok) {
                results.set(CHECKS[i], { ok: false, msg: `not run: ${aborted}` });
            }
        }
        await failureArtefacts('timeout');
        await cleanup();
        summary();
        process.exit(1);
    })();
}, globalTimeout);
for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
        void cleanup().then(() => process.exit(1));
    });
}

// ---------------------------------------------------------------------------------------------------------------

const entry = path.join(cache, 'node_modules/code-server/out/node/entry.js');
let chromium;
const editorLine = 21; // 1-based: the ALTERNATIVE line of save_fl_bad in examples/demo.S
let ws;
let port;

async function main() {
    fs.mkdirSync(outDir, { recursive: true });
    for (const f of fs.readdirSync(outDir)) {
        if (f.endsWith('.png')) {
            fs.rmSync(path.join(outDir, f));
        }
    }

    await check(CHECKS[0], async () => {
        const missing = [];
        if (!fs.existsSync(entry)) {
            missing.push(`code-server (${entry}; run scripts/vscode-e2e-deps.sh)`);
        }
        if (!fs.existsSync(chromiumPath)) {
            missing.push(`chromium (${chromiumPath}; run scripts/vscode-e2e-deps.sh)`);
        }
        if (!fs.existsSync(altcfi)) {
            missing.push(`altcfi binary (${altcfi}; cargo build -p altcfi)`);
        }
        if (!fs.existsSync(vsix)) {
            missing.push(`.vsix (${vsix}; scripts/editors-test.sh builds it, or npm run build && npx vsce package ` +
                '--no-dependencies --skip-license -o altcfi.vsix in editors/vscode)');
        }
        if (missing.length > 0) {
            throw new Error('missing: ' + missing.join('; '));
        }
        const req = createRequire(path.join(cache, 'package.json'));
        ({ chromium } = req('playwright-core'));
        const version = run(process.execPath, [entry, '--version']).trim().split('\n').pop();
        const stale = fs
            .readdirSync(path.join(ext, 'src'))
            .map((f) => path.join(ext, 'src', f))
            .concat([path.join(ext, 'package.json')])
            .filter((f) => fs.statSync(f).mtimeMs > fs.statSync(vsix).mtimeMs);
        if (stale.length > 0) {
            throw new Error(`${vsix} is older than ${stale.join(', ')}: rebuild it (scripts/editors-test.sh does)`);
        }
        // A private copy: another run of editors-test.sh in the same tree deletes and rewrites the .vsix.
        tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'altcfi-vscode-e2e-')));
        fs.copyFileSync(vsix, path.join(tmp, 'altcfi.vsix'));
        return `code-server ${version.split(' ')[0]}, vsix ${fs.statSync(vsix).size} bytes`;
    });

    await check(CHECKS[1], async () => {
        ws = path.join(tmp, 'ws');
        for (const rel of [
            'examples/demo.S',
            'examples/strict-only.S',
            'tests/fixtures/alt/alt-macros-612.h',
            'tests/fixtures/alt/fixture-common.h',
        ]) {
            fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
            fs.copyFileSync(path.join(repo, rel), path.join(ws, rel));
        }
        const args = ['-c', '-g', 'examples/demo.S', '-o', 'build/demo.o'];
        const strictArgs = ['-c', '-g', 'examples/strict-only.S', '-o', 'build/strict-only.o'];
        fs.writeFileSync(
            path.join(ws, 'compile_commands.json'),
            JSON.stringify([
                { directory: ws, file: 'examples/demo.S', arguments: ['gcc', ...args], output: 'build/demo.o' },
                { directory: ws, file: 'examples/strict-only.S', arguments: ['gcc', ...strictArgs], output: 'build/strict-only.o' },
            ], null, 1),
        );
        fs.mkdirSync(path.join(ws, 'build'));
        run(process.env.CC || 'gcc', args, { cwd: ws });
        run(process.env.CC || 'gcc', strictArgs, { cwd: ws });
        const text = fs.readFileSync(path.join(ws, 'examples/demo.S'), 'utf8').split('\n');
        if (!text[editorLine - 1].includes('ALTERNATIVE') || !text[editorLine - 1].includes('push %rcx')) {
            throw new Error(`examples/demo.S line ${editorLine} is not save_fl_bad's ALTERNATIVE: ${text[editorLine - 1]}`);
        }
        userData = path.join(tmp, 'user-data');
        fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
        fs.writeFileSync(
            path.join(userData, 'User/settings.json'),
            JSON.stringify(
                {
                    'altcfi.server.path': altcfi,
                    'workbench.startupEditor': 'none',
                    'workbench.tips.enabled': false,
                    'workbench.enableExperiments': false,
                    'security.workspace.trust.enabled': false,
                    'telemetry.telemetryLevel': 'off',
                    'update.mode': 'none',
                    'extensions.autoUpdate': false,
                    'extensions.autoCheckUpdates': false,
                    'extensions.ignoreRecommendations': true,
                    'git.enabled': false,
                    'editor.minimap.enabled': false,
                    'editor.fontSize': 15,
                    'editor.hover.delay': 100,
                    'editor.hover.above': false,
                    'editor.stickyScroll.enabled': false,
                    'workbench.colorTheme': 'Default Dark Modern',
                    'files.watcherExclude': { '**/user-data/**': true },
                },
                null,
                1,
            ),
        );
        return ws;
    });

    const extDir = () => path.join(tmp, 'extensions');
    const env = () => ({
        ...process.env,
        XDG_CONFIG_HOME: path.join(tmp, 'xdg-config'),
        XDG_DATA_HOME: path.join(tmp, 'xdg-data'),
        XDG_CACHE_HOME: path.join(tmp, 'xdg-cache'),
    });
    const common = () => [
        '--config', path.join(tmp, 'code-server.yaml'),
        '--user-data-dir', userData,
        '--extensions-dir', extDir(),
    ];

    await check(CHECKS[2], async () => {
        fs.writeFileSync(path.join(tmp, 'code-server.yaml'), 'auth: none\n');
        const out = run(process.execPath, [entry, ...common(), '--install-extension', path.join(tmp, 'altcfi.vsix')], { env: env() });
        const installed = fs.existsSync(extDir()) ? fs.readdirSync(extDir()).filter((d) => d.startsWith('altcfi.altcfi-')) : [];
        if (installed.length !== 1 || !/successfully installed/i.test(out)) {
            throw new Error(`not installed (extensions dir: ${JSON.stringify(installed)}):\n${out}`);
        }
        return installed[0];
    });

    await check(CHECKS[3], async () => {
        // Port 0: the kernel picks a free loopback port, code-server prints it.
        codeServer = spawn(
            process.execPath,
            [
                entry, ...common(),
                '--auth', 'none',
                '--bind-addr', '127.0.0.1:0',
                '--disable-telemetry',
                '--disable-update-check',
                '--disable-workspace-trust',
                '--disable-getting-started-override',
                '--ignore-last-opened',
                ws,
            ],
            { env: env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        for (const s of [codeServer.stdout, codeServer.stderr]) {
            s.setEncoding('utf8');
            s.on('data', (d) => {
                codeServerLog += d;
            });
        }
        port = await until(
            'code-server to listen',
            () => {
                if (codeServer.exitCode !== null) {
                    throw new Error(`code-server exited with ${codeServer.exitCode}`);
                }
                return codeServerLog.match(/HTTP server listening on http:\/\/127\.0\.0\.1:(\d+)/)?.[1];
            },
            30000,
        );
        await until('/healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 15000);
        browser = await chromium.launch({
            executablePath: chromiumPath,
            headless: true,
            // Chromium's own files (its crash database) in the throwaway directory, not in ~/.config.
            env: env(),
            args: [
                '--no-sandbox',
                '--disable-gpu',
                '--disable-quic',
                '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
                '--disable-dev-shm-usage',
                '--disable-crash-reporter',
            ],
        });
        const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
        page = await context.newPage();
        page.setDefaultTimeout(15000);
        await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`, { timeout: 30000 });
        await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
        // The explorer lists the workspace: the remote file system is up.
        await until('the explorer to show examples/', async () =>
            (await page.locator('.explorer-folders-view').innerText().catch(() => '')).includes('examples'), 60000);
        return `port ${port}, ${await page.title()}`;
    });

    await check(CHECKS[4], async () => {
        await dismissNotifications();
        // No side bar: the editor and the Problems panel get the whole width (for the screenshots).
        await runCommand('View: Close Primary Side Bar');
        await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => {});
        await until('quick open to show demo.S', async () => {
            if (!(await page.locator('.quick-input-widget').isVisible())) {
                await page.keyboard.press('Control+P');
                await page.locator('.quick-input-widget input').waitFor({ timeout: 3000 });
                await page.keyboard.type('demo.S');
            }
            const rows = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
            return rows.some((r) => r.includes('demo.S'));
        }, 30000, 500);
        await page.keyboard.press('Enter');
        await until('an editor tab for demo.S with the text loaded', async () => {
            const tab = await page.locator('.tabs-container .tab.active').innerText().catch(() => '');
            const text = await editorText();
            return tab.includes('demo.S') && text.includes('SYM_FUNC_START(save_fl_bad)');
        }, 20000);
    });

    await check(CHECKS[5], async () => {
        await runCommand('View: Focus Problems (Errors, Warnings, Infos)');
        const row = await until(
            `a Problems row on line ${editorLine} with X86_FEATURE_XENPV and +0x2`,
            async () => {
                const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts();
                return rows.find((r) => r.includes('X86_FEATURE_XENPV') && r.includes('+0x2') && r.includes(`Ln ${editorLine},`))
                    ?? (rows.length ? false : false);
            },
            60000,
        ).catch(async (e) => {
            const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts().catch(() => []);
            throw new Error(`${e.message}\nProblems rows: ${JSON.stringify(rows)}`);
        });
        for (const needle of ['stack layout conflict in alternatives', 'save_fl_bad', 'rsp+24', 'altcfi']) {
            if (!row.includes(needle)) {
                throw new Error(`the Problems row lacks "${needle}": ${row}`);
            }
        }
        const status = await page.locator('#status\\.problems').getAttribute('aria-label').catch(() => null);
        return `${row.replace(/\s+/g, ' ').slice(0, 110)}…; status bar: ${status}`;
    });

    await check(CHECKS[6], async () => {
        await gotoLine(editorLine);
        const lineTop = await until('the squiggle', async () => {
            const squiggles = await page.locator('.editor-group-container.active .monaco-editor .squiggly-error').all();
            const top = await lineTopPx(editorLine);
            for (const s of squiggles) {
                const t = await s.evaluate((el) => el.parentElement?.style.top ?? el.style.top);
                if (top !== null && t === top) {
                    return top;
                }
            }
            return false;
        }, 20000);
        return `line top ${lineTop}`;
    });

    await check(CHECKS[7], async () => {
        const item = await until('the altcfi status bar item', async () => {
            const texts = await page.locator('.statusbar-item').allInnerTexts().catch(() => []);
            return texts.find((t) => t.includes('altcfi 6.12') && t.includes('1 object')) ?? false;
        }, 30000);
        if (!item.includes('1 finding')) {
            throw new Error(`the status item does not count the finding: ${item}`);
        }
        return item.replace(/\s+/g, ' ');
    });

    await check(CHECKS[8], async () => {
        const lens = await until('the code lens of save_fl_bad\'s site', async () => {
            const lenses = await page.locator('.editor-group-container.active .monaco-editor .codelens-decoration').allInnerTexts();
            return lenses.find((l) => l.includes('conflict at +0x2'));
        }, 20000);
        if (!lens.includes('X86_FEATURE_XENPV')) {
            throw new Error(`the code lens lacks X86_FEATURE_XENPV: ${lens}`);
        }
        const hint = await until('the inlay hint on line 21', async () => {
            const top = await lineTopPx(editorLine);
            return page.locator('.editor-group-container.active .monaco-editor .view-lines').first().evaluate((el, top) => {
                const line = [...el.querySelectorAll('.view-line')].find((l) => l.style.top === top);
                return line?.textContent.replace(/\u00a0/g, ' ').match(/CFA=rsp\+8\s*⚠ alt conflict/)?.[0];
            }, top);
        }, 20000);
        await page.screenshot({ path: path.join(outDir, 'vscode-conflict.png') });
        return `"${lens.trim()}", "${hint}"; screenshot vscode-conflict.png`;
    });

    await check(CHECKS[9], async () => {
        // More room for the hover: the panel closed, line 20 (SYM_FUNC_START) scrolled to the top of the editor and
        // the hover below the line (settings: editor.hover.above false).
        await setPanelVisible(false);
        await gotoLine(editorLine);
        const editorBox = await page.locator('.editor-group-container.active .monaco-editor').first().boundingBox();
        await until('line 20 near the top of the editor', async () => {
            const y = await lineNumberY(editorLine - 1);
            if (y !== null && y >= editorBox.y - 6 && y <= editorBox.y + 60) {
                return true;
            }
            await page.mouse.move(editorBox.x + 300, editorBox.y + 200);
            await page.mouse.wheel(0, y === null ? -40 : y - editorBox.y - 20);
            await page.waitForTimeout(150);
            return false;
        }, 10000, 50);
        // Hover with the mouse over the ALTERNATIVE keyword of the line, as a user would.
        const hover = page.locator('.monaco-hover:not(.hidden) .monaco-hover-content');
        const text = await until('a hover with rsp+24', async () => {
            if (!(await hover.first().isVisible().catch(() => false))) {
                const box = await tokenBox(editorLine, 'ALTERNATIVE');
                await page.mouse.move(box.x - 40, box.y + box.height / 2 + 200);
                await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
                await page.waitForTimeout(500);
            }
            const t = await hover.allInnerTexts().catch(() => []);
            return t.find((x) => x.includes('rsp+24'));
        }, 30000, 300);
        for (const needle of ['pushf', '%rcx', 'rsp+8', 'rsp+24', 'conflict']) {
            if (!text.includes(needle)) {
                throw new Error(`the hover lacks "${needle}":\n${text}`);
            }
        }
        // The hover is at most a quarter of the editor high at first; drag its lower edge down (as a user can) so
        // the picture shows the whole CFI table. Cosmetic: the check does not depend on it.
        const grown = await growHover(editorBox.y + editorBox.height - 8).catch((e) => `not resized: ${e.message}`);
        await page.screenshot({ path: path.join(outDir, 'vscode-hover.png') });
        await page.mouse.move(5, 890);
        await page.keyboard.press('Escape');
        await setPanelVisible(true);
        return `${text.split('\n').length} lines, ${grown}; screenshot vscode-hover.png`;
    });

    await check(CHECKS[10], async () => {
        await gotoLine(editorLine);
        await runCommand('altcfi: Show CFI table');
        const text = await until('the CFI table editor', async () => {
            const tabs = await page.locator('.tabs-container .tab').allInnerTexts();
            if (!tabs.some((t) => t.includes('save_fl_bad'))) {
                return false;
            }
            const t = await editorText();
            return t.includes('save_fl_bad in demo.o') && t;
        }, 20000);
        for (const needle of ['save_fl_bad+0x0', 'pushf', 'CFA=rsp+8', 'replacement #1', 'X86_FEATURE_XENPV', 'CFA=rsp+24']) {
            if (!text.includes(needle)) {
                throw new Error(`the table lacks "${needle}":\n${text}`);
            }
        }
        const readOnly = await page.locator('.editor-group-container.active .monaco-editor').getAttribute('class');
        await page.screenshot({ path: path.join(outDir, 'vscode-cfi-table.png') });
        return `${text.split('\n').length} visible lines${readOnly?.includes('read-only') ? ', read-only' : ''}; screenshot vscode-cfi-table.png`;
    });

    await check(CHECKS[11], async () => {
        const src = path.join(ws, 'examples/demo.S');
        const text = fs.readFileSync(src, 'utf8');
        const fixed = text.replace('"push %rcx; push %rcx; pop %rax; pop %rcx"', '"call xen_save_fl"');
        if (fixed === text) {
            throw new Error('could not fix examples/demo.S');
        }
        // Back to the source, as a user does: the table opened as a preview tab in the same editor group.
        await page.locator('.tabs-container .tab', { hasText: 'demo.S' }).first().click();
        fs.writeFileSync(src, fixed);
        run(process.env.CC || 'gcc', ['-c', '-g', 'examples/demo.S', '-o', 'build/demo.o'], { cwd: ws });
        const rebuilt = Date.now();
        await runCommand('View: Focus Problems (Errors, Warnings, Infos)');
        const status = await until('the conflict to leave the Problems panel and the editor', async () => {
            const panel = page.locator('.markers-panel');
            if (!(await panel.isVisible())) {
                return false;
            }
            const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts();
            const squiggles = await page.locator('.monaco-editor .squiggly-error').count();
            const editor = (await editorTextOf('demo.S')).replace(/\u00a0/g, ' ');
            const label = (await page.locator('#status\\.problems').getAttribute('aria-label').catch(() => '')) ?? '';
            return (
                editor.split('"call xen_save_fl"').length === 3 &&
                !rows.some((r) => /conflict|older than/.test(r)) &&
                squiggles === 0 &&
                /Errors: 0\b|No Problems/i.test(label) &&
                label
            );
        }, 30000);
        await page.screenshot({ path: path.join(outDir, 'vscode-fixed.png') });
        return `${((Date.now() - rebuilt) / 1000).toFixed(1)} s after the rebuild; status bar: ${status}`;
    });

    // Live mode: the source on disk is the fixed one now; the conflicting line comes back only in the buffer.
    const badLine = fs.readFileSync(path.join(repo, 'examples/demo.S'), 'utf8').split('\n')[editorLine - 1];
    const unsavedProblem = async () => {
        const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts().catch(() => []);
        return rows.find((r) => r.includes('altcfi (unsaved)') && r.includes('conflict') && r.includes(`Ln ${editorLine},`));
    };
    const squiggleOnLine = async () => {
        const top = await lineTopPx(editorLine);
        for (const sq of await page.locator('.editor-group-container.active .monaco-editor .squiggly-error').all()) {
            if (top !== null && (await sq.evaluate((el) => el.parentElement?.style.top ?? el.style.top)) === top) {
                return true;
            }
        }
        return false;
    };
    const typeBadLine = async () => {
        await gotoLine(editorLine);
        await page.keyboard.press('Home');
        await page.keyboard.press('Home');
        await page.keyboard.press('Shift+End');
        // As pasted text: no auto-closed quotes.
        await page.keyboard.insertText(badLine);
    };
    await check(CHECKS[12], async () => {
        await setPanelVisible(true);
        await runCommand('View: Focus Problems (Errors, Warnings, Infos)');
        await typeBadLine();
        const row = await until('an altcfi (unsaved) conflict on line 21 and its squiggle', async () =>
            (await squiggleOnLine()) && (await unsavedProblem()), 30000);
        const typed = Date.now();
        await page.keyboard.press('Control+Z');
        await until('undo to clear the conflict', async () => !(await squiggleOnLine()) && !(await unsavedProblem()), 30000);
        return `${row.replace(/\s+/g, ' ').slice(0, 100)}…; cleared ${((Date.now() - typed) / 1000).toFixed(1)} s after undo`;
    });

    await check(CHECKS[13], async () => {
        await typeBadLine();
        await until('the unsaved conflict again', async () => (await squiggleOnLine()) && (await unsavedProblem()), 30000);
        await gotoLine(editorLine);
        const menu = page.locator('.action-widget .monaco-list-row, .context-view .action-widget .monaco-list-row');
        const title = await until('a quick fix that makes the site clean', async () => {
            if (!(await menu.first().isVisible().catch(() => false))) {
                await page.keyboard.press('Control+.');
                await page.waitForTimeout(800);
            }
            const items = await menu.allInnerTexts().catch(() => []);
            return items.find((t) => t.includes('the site becomes clean'));
        }, 30000, 500);
        // The menu has the keyboard focus on its first fix (every fix offered is a checked one): take it, as with
        // the keyboard, and name the one taken.
        const focused = (await menu.filter({ hasText: 'the site becomes clean' }).and(page.locator('.focused'))
            .first().innerText().catch(() => title)).trim();
        if (!focused.includes('the site becomes clean')) {
            throw new Error(`the focused entry of the quick-fix menu is not a fix: ${focused}`);
        }
        await page.keyboard.press('Enter');
        await until('the quick fix to clear the unsaved conflict', async () =>
            !(await squiggleOnLine()) && !(await unsavedProblem()), 30000);
        await page.screenshot({ path: path.join(outDir, 'vscode-quickfix.png') });
        await page.keyboard.press('Control+S');
        const src = path.join(ws, 'examples/demo.S');
        await until('the fixed text saved', async () => fs.readFileSync(src, 'utf8').split('\n')[editorLine - 1] !== badLine &&
            !(await page.locator('.tabs-container .tab.active.dirty').count()), 10000);
        run(process.env.CC || 'gcc', ['-c', '-g', 'examples/demo.S', '-o', 'build/demo.o'], { cwd: ws });
        const check = spawnSync(altcfi, ['check', 'build/demo.o'], { cwd: ws, encoding: 'utf8' });
        if (check.status !== 0) {
            throw new Error(`altcfi check on the fixed and rebuilt object: exit ${check.status}\n${check.stdout}${check.stderr}`);
        }
        const oracle = path.join(repo, '.cache/oracle/root/usr/lib');
        const objtool = fs.existsSync(oracle)
            ? fs.readdirSync(oracle).filter((d) => d.startsWith('linux-kbuild-6.12'))
                .map((d) => path.join(oracle, d, 'tools/objtool/objtool.real-x86')).find((f) => fs.existsSync(f))
            : undefined;
        if (!objtool) {
            throw new Error(`no objtool 6.12 under ${oracle}: bash scripts/deps.sh installs it`);
        }
        fs.copyFileSync(path.join(ws, 'build/demo.o'), path.join(ws, 'build/demo-objtool.o'));
        const ot = spawnSync(objtool, ['--orc', 'build/demo-objtool.o'], { cwd: ws, encoding: 'utf8' });
        if (/stack layout conflict/.test(ot.stdout + ot.stderr)) {
            throw new Error(`objtool still reports the conflict:\n${ot.stdout}${ot.stderr}`);
        }
        const fixedLine = fs.readFileSync(src, 'utf8').split('\n')[editorLine - 1].trim();
        return `"${focused.slice(0, 90)}"; saved line: ${fixedLine.slice(0, 90)}; altcfi check exit 0, objtool 6.12 --orc: no conflict`;
    });

    await check(CHECKS[14], async () => {
        const strictText = fs.readFileSync(path.join(ws, 'examples/strict-only.S'), 'utf8').split('\n');
        const strictLine = strictText.findIndex((l) => l.trim().startsWith('ALTERNATIVE')) + 1;
        await until('quick open to show strict-only.S', async () => {
            if (!(await page.locator('.quick-input-widget').isVisible())) {
                await page.keyboard.press('Control+P');
                await page.locator('.quick-input-widget input').waitFor({ timeout: 3000 });
                await page.keyboard.type('strict-only.S');
            }
            const rows = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
            return rows.some((r) => r.includes('strict-only.S'));
        }, 30000, 500);
        await page.keyboard.press('Enter');
        await until('an editor tab for strict-only.S', async () =>
            (await page.locator('.tabs-container .tab.active').innerText().catch(() => '')).includes('strict-only.S'), 20000);
        await setPanelVisible(true);
        await runCommand('View: Focus Problems (Errors, Warnings, Infos)');
        const row = await until(`a Problems row on line ${strictLine} saying strict-only`, async () => {
            const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts();
            return rows.find((r) => r.includes('strict-only') && r.includes(`Ln ${strictLine},`));
        }, 30000);
        const label = (await page.locator('#status\\.problems').getAttribute('aria-label').catch(() => '')) ?? '';
        if (/Errors: [1-9]/.test(label)) {
            throw new Error(`a strict-only conflict must not be an error: ${label}`);
        }
        await setPanelVisible(false);
        await gotoLine(strictLine, 'strict-only.S');
        const hover = page.locator('.monaco-hover:not(.hidden) .monaco-hover-content');
        const text = await until('a hover naming what differs', async () => {
            if (!(await hover.first().isVisible().catch(() => false))) {
                const box = await tokenBox(strictLine, 'ALTERNATIVE');
                await page.mouse.move(box.x - 40, box.y + box.height / 2 + 200);
                await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
                await page.waitForTimeout(500);
            }
            const t = await hover.allInnerTexts().catch(() => []);
            return t.find((x) => x.includes('stack size'));
        }, 30000, 300);
        for (const needle of ['stack size 16 vs 24', 'strict-only', 'unwind ✓']) {
            if (!text.includes(needle)) {
                throw new Error(`the hover lacks "${needle}":\n${text}`);
            }
        }
        if (text.includes('✗')) {
            throw new Error(`a strict-only hover shows a wrong unwind:\n${text}`);
        }
        await page.screenshot({ path: path.join(outDir, 'vscode-strict-only.png') });
        await page.keyboard.press('Escape');
        return `${row.replace(/\s+/g, ' ').slice(0, 100)}…; ${label}; hover ${text.split('\n').length} lines`;
    });

    const kernelAsm = path.join(kernelTree, 'arch/x86/entry/entry_64.S');
    let untrainLine = 0;
    await check(CHECKS[15], async () => {
        if (!fs.existsSync(kernelAsm)) {
            throw new Error(`no kernel tree at ${kernelTree}: bash scripts/kernel-tree.sh 6.12 noibt (scripts/editors-test.sh runs it)`);
        }
        untrainLine = fs.readFileSync(kernelAsm, 'utf8').split('\n').findIndex((l) => l.trim() === 'UNTRAIN_RET') + 1;
        if (untrainLine === 0) {
            throw new Error(`no UNTRAIN_RET line in ${kernelAsm}`);
        }
        await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(kernelTree)}`, { timeout: 30000 });
        await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
        await dismissNotifications();
        // The file dialog, as a user opening a file by path: quick open searches with the tree's .gitignore, which
        // in a Debian source package ignores everything.
        await until('the file dialog (Ctrl+O)', async () => {
            if (!(await page.locator('.quick-input-widget').isVisible())) {
                await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => {});
                await page.keyboard.press('Control+O');
                await page.waitForTimeout(500);
            }
            return page.locator('.quick-input-widget input').isVisible();
        }, 20000, 500);
        // The dialog completes the path as it is typed and lists the directory: type it, let the list settle on
        // the file, then accept (again, should the dialog still be open).
        const input = page.locator('.quick-input-widget input');
        await until('the file dialog to accept entry_64.S', async () => {
            if (!(await input.isVisible().catch(() => false))) {
                return true;
            }
            if ((await input.inputValue()) !== kernelAsm) {
                await input.fill('');
                await input.type(kernelAsm, { delay: 5 });
                await page.waitForTimeout(1000);
                return false;
            }
            await page.keyboard.press('Enter');
            await page.waitForTimeout(1500);
            return !(await input.isVisible().catch(() => false));
        }, 30000, 200);
        await until('an editor tab for entry_64.S with the text loaded', async () => {
            const tab = await page.locator('.tabs-container .tab.active').innerText().catch(() => '');
            const text = await editorText();
            return tab.includes('entry_64.S') && text.includes('SPDX-License-Identifier');
        }, 30000);
        return `${kernelAsm}, UNTRAIN_RET on line ${untrainLine}`;
    });

    await check(CHECKS[16], async () => {
        const item = await until('the altcfi status bar item for entry_64.S', async () => {
            const texts = await page.locator('.statusbar-item').allInnerTexts().catch(() => []);
            return texts.find((t) => t.includes('altcfi 6.12') && /[1-9]\d* object/.test(t)) ?? false;
        }, 60000);
        await gotoLine(untrainLine, 'entry_64.S');
        const lens = await until('the code lens of the UNTRAIN_RET sites', async () => {
            const lenses = await page.locator('.editor-group-container.active .monaco-editor .codelens-decoration').allInnerTexts();
            // Two sites on the line: their lenses share the row, each written short (`UNRET, SRSO_ALIAS — …`).
            return lenses.find((l) => l.includes('UNRET, SRSO_ALIAS'));
        }, 30000);
        const hint = await until(`the inlay hint on line ${untrainLine}`, async () => {
            const top = await lineTopPx(untrainLine);
            return page.locator('.editor-group-container.active .monaco-editor .view-lines').first().evaluate((el, top) => {
                const line = [...el.querySelectorAll('.view-line')].find((l) => l.style.top === top);
                return line?.textContent.replace(/\u00a0/g, ' ').match(/pt_regs[^⚠]*/)?.[0];
            }, top);
        }, 30000);
        await page.screenshot({ path: path.join(outDir, 'vscode-kernel.png') });
        return `${item.replace(/\s+/g, ' ')}; lens "${lens.trim().slice(0, 80)}"; hint "${hint.trim()}"; screenshot vscode-kernel.png`;
    });

    await check(CHECKS[17], async () => {
        await setPanelVisible(false);
        await gotoLine(untrainLine, 'entry_64.S');
        const hover = page.locator('.monaco-hover:not(.hidden) .monaco-hover-content');
        const text = await until('a hover with the UNTRAIN_RET sites', async () => {
            if (!(await hover.first().isVisible().catch(() => false))) {
                const box = await tokenBox(untrainLine, 'UNTRAIN_RET');
                await page.mouse.move(box.x - 40, box.y + box.height / 2 + 200);
                await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
                await page.waitForTimeout(500);
            }
            const t = await hover.allInnerTexts().catch(() => []);
            return t.find((x) => x.includes('alternative site'));
        }, 40000, 300);
        for (const needle of ['call entry_untrain_ret', 'X86_FEATURE_UNRET', 'nop ×']) {
            if (!text.includes(needle)) {
                throw new Error(`the hover lacks "${needle}":\n${text}`);
            }
        }
        if (/call \*?0x/.test(text)) {
            throw new Error(`the hover shows a call target as a number:\n${text}`);
        }
        await page.screenshot({ path: path.join(outDir, 'vscode-kernel-hover.png') });
        await page.keyboard.press('Escape');
        return `${text.split('\n').length} lines; screenshot vscode-kernel-hover.png`;
    });
}

// --- workbench helpers

/** Closes the notification toasts (code-server's update and welcome notices) so they hide nothing. */
async function dismissNotifications() {
    const close = page.locator('.notifications-toasts .codicon-notifications-clear, .notification-toast .codicon-close');
    for (const b of await close.all()) {
        await b.click({ timeout: 2000 }).catch(() => {});
    }
}

/** Runs a command from the palette (F1), by its title; waits until the palette offers it. */
async function runCommand(title) {
    await until(`the command palette to offer "${title}"`, async () => {
        if (!(await page.locator('.quick-input-widget').isVisible())) {
            await page.keyboard.press('F1');
            await page.locator('.quick-input-widget input').waitFor({ timeout: 3000 });
        }
        await page.locator('.quick-input-widget input').fill('>' + title);
        const rows = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
        return rows.length > 0 && rows[0].replace(/\s+/g, ' ').includes(title);
    }, 20000, 400);
    await page.keyboard.press('Enter');
    await until('the command palette to close', async () => !(await page.locator('.quick-input-widget').isVisible()), 5000);
}

/** Puts the cursor on a line of an editor (by its tab name, demo.S by default; Go to Line), brings it into view. */
async function gotoLine(line, name = 'demo.S') {
    await focusEditor(name);
    await page.keyboard.press('Control+G');
    await page.locator('.quick-input-widget input').waitFor({ timeout: 5000 });
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await until(`the cursor on line ${line}`, async () =>
        (await page.locator('#status\\.editor\\.selection').innerText().catch(() => '')).includes(`Ln ${line},`), 5000);
}

async function focusEditor(name) {
    const tab = page.locator('.tabs-container .tab', { hasText: name }).first();
    await tab.click();
    await until(`${name} to be the active editor`, async () =>
        (await page.locator('.editor-group-container.active .tab.active').innerText().catch(() => '')).includes(name), 5000);
    // Clicking the tab focuses its editor (a click into the text could scroll it).
    await until(`${name}'s editor to have the keyboard focus`, () =>
        page.evaluate(() => document.activeElement?.closest('.editor-group-container.active .monaco-editor') != null), 5000);
}

/** Shows or hides the panel (Problems, Output, …) with View: Toggle Panel Visibility (Ctrl+J). */
async function setPanelVisible(visible) {
    await until(`the panel ${visible ? 'shown' : 'hidden'}`, async () => {
        if ((await page.locator('.part.panel').isVisible()) === visible) {
            return true;
        }
        await page.keyboard.press('Control+J');
        await page.waitForTimeout(300);
        return false;
    }, 5000, 50);
}

/** The screen y of a line's number in the active editor's gutter, or null if that line is not rendered. */
async function lineNumberY(line) {
    return page.locator('.editor-group-container.active .monaco-editor .margin-view-overlays').first().evaluate((el, line) => {
        for (const n of el.querySelectorAll('.line-numbers')) {
            if (n.textContent.trim() === String(line)) {
                return n.getBoundingClientRect().y;
            }
        }
        return null;
    }, line);
}

/** Drags the lower edge of the visible hover down to `bottom` (screen y); returns a note of the new height. */
async function growHover(bottom) {
    const widget = page.locator('.monaco-resizable-hover').filter({ has: page.locator('.monaco-hover:not(.hidden)') }).first();
    const before = await widget.boundingBox();
    const sash = await widget.evaluate((w) => {
        let best = null;
        for (const s of w.querySelectorAll('.monaco-sash.horizontal')) {
            const r = s.getBoundingClientRect();
            if (r.width > 0 && (best === null || r.y > best.y)) {
                best = { x: r.x + r.width / 2, y: r.y + r.height / 2 };
            }
        }
        return best;
    });
    if (sash === null || before === null) {
        throw new Error('no sash on the hover');
    }
    await page.mouse.move(sash.x, sash.y);
    await page.mouse.down();
    await page.mouse.move(sash.x, bottom, { steps: 8 });
    await page.mouse.up();
    const after = await until('the hover to stop growing', async () => {
        const a = (await widget.boundingBox())?.height;
        await page.waitForTimeout(150);
        const b = (await widget.boundingBox())?.height;
        return a === b && b;
    }, 5000, 50);
    return `hover ${Math.round(before.height)} → ${Math.round(after)} px high`;
}

/** The visible text of the active editor, lines in order. */
async function editorText() {
    return page.locator('.editor-group-container.active .monaco-editor .view-lines').first().evaluate((el) =>
        [...el.querySelectorAll('.view-line')]
            .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
            .map((l) => l.textContent.replace(/\u00a0/g, ' '))
            .join('\n'),
    );
}

/** The visible text of the editor whose tab is `name`, whichever group it is in. */
async function editorTextOf(name) {
    return page.evaluate((name) => {
        for (const g of document.querySelectorAll('.editor-group-container')) {
            const tab = g.querySelector('.tab.active');
            if (tab && tab.textContent.includes(name)) {
                const lines = g.querySelectorAll('.monaco-editor .view-lines .view-line');
                return [...lines].map((l) => l.textContent).join('\n');
            }
        }
        return '';
    }, name);
}

/** The CSS `top` of a line in the active editor (from its line number in the gutter), or null if not rendered. */
async function lineTopPx(line) {
    return page.locator('.editor-group-container.active .monaco-editor .margin-view-overlays').first().evaluate((el, line) => {
        for (const n of el.querySelectorAll('.line-numbers')) {
            if (n.textContent.trim() === String(line)) {
                return n.parentElement.style.top;
            }
        }
        return null;
    }, line);
}

/** The screen box of a word on a line of the active editor. */
async function tokenBox(line, word) {
    const top = await lineTopPx(line);
    if (top === null) {
        throw new Error(`line ${line} is not rendered`);
    }
    const box = await page.locator('.editor-group-container.active .monaco-editor .view-lines').first().evaluate((el, [top, word]) => {
        for (const l of el.querySelectorAll('.view-line')) {
            if (l.style.top !== top) {
                continue;
            }
            for (const s of l.querySelectorAll('span span')) {
                if (s.textContent.includes(word)) {
                    const r = s.getBoundingClientRect();
                    return { x: r.x, y: r.y, width: r.width, height: r.height };
                }
            }
        }
        return null;
    }, [top, word]);
    if (box === null) {
        throw new Error(`"${word}" not found on line ${line}`);
    }
    return box;
}

// ---------------------------------------------------------------------------------------------------------------

let status = 1;
try {
    await main();
} catch (e) {
    console.log(`FAIL  harness error: ${e instanceof Error ? e.stack : String(e)}`);
    aborted = aborted ?? 'harness error';
    printServerLogs();
} finally {
    clearTimeout(timer);
    await cleanup();
    status = summary() === 0 ? 0 : 1;
}
process.exit(status);
