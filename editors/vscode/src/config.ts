// Settings → server command line and `initializationOptions`, and where the server binary is.
//
// This module must not import `vscode`: it is plain data in, plain data out, so its unit tests run under node's
// own test runner without a VS Code instance. extension.ts reads the configuration and passes it in.

import * as path from 'path';

/** The `kernel` values the server understands. */
export type Kernel = 'auto' | '6.1' | '6.12';

/** The `initializationOptions` contract of `altcfi lsp` (see docs/guide.md, "Configuration reference"). */
export interface InitializationOptions {
    objectGlobs: string[];
    framePointer: boolean;
    kernel: Kernel;
    cpufeatures: string | null;
    inlayHints: boolean | 'changes' | 'all' | 'off';
    buildDirs: string[];
    ehFrame: boolean;
    memoryBudgetMiB: number;
    live: LiveOptions;
}

/** Live mode: the unsaved buffer compiled with its compile command (docs/lsp.md, "Live mode and its safety"). */
export interface LiveOptions {
    enable: boolean;
    compilers: string[];
    timeoutMs: number;
}

/** The compilers live mode may run by default. */
export const DEFAULT_LIVE_COMPILERS: readonly string[] = ['gcc', 'cc', 'clang', 'as'];

/** `altcfi.live.*`; anything missing or of the wrong type gets the default. */
function liveOptions(get: SettingsReader): LiveOptions {
    const compilers = stringArray(get('live.compilers'));
    const timeout = get('live.timeoutMs');
    return {
        enable: get('live.enable') !== false,
        compilers: compilers.length > 0 ? compilers : [...DEFAULT_LIVE_COMPILERS],
        timeoutMs: typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0 ? Math.round(timeout) : 10000,
    };
}

/** Reads one setting under `altcfi.` (the `get` of a `WorkspaceConfiguration`, or a plain map in tests). */
export type SettingsReader = (key: string) => unknown;

const KERNELS: readonly Kernel[] = ['auto', '6.1', '6.12'];

function stringArray(v: unknown): string[] {
    if (!Array.isArray(v)) {
        return [];
    }
    return v.filter((s): s is string => typeof s === 'string' && s.trim() !== '').map((s) => s.trim());
}

function optionalString(v: unknown): string | null {
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : null;
}

/** The server's default `memoryBudgetMiB`. */
export const MEMORY_BUDGET_MIB = 32;

/** A whole number ≥ 0, else `fallback`. */
function wholeNumber(v: unknown, fallback: number): number {
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fallback;
}

/** `altcfi.inlayHints`: a boolean, or `changes`/`all`/`off`; anything else is the default, `true`. */
function inlayHints(v: unknown): boolean | 'changes' | 'all' | 'off' {
    if (v === false || v === 'changes' || v === 'all' || v === 'off') {
        return v;
    }
    return true;
}

/** The `initializationOptions` for the settings; anything missing or of the wrong type gets the default. */
export function initializationOptions(get: SettingsReader, home?: string): InitializationOptions {
    const kernel = get('kernel');
    const cpufeatures = optionalString(get('cpufeatures'));
    return {
        objectGlobs: stringArray(get('objectGlobs')),
        framePointer: get('framePointer') === true,
        kernel: KERNELS.includes(kernel as Kernel) ? (kernel as Kernel) : 'auto',
        cpufeatures: cpufeatures === null ? null : expandHome(cpufeatures, home),
        inlayHints: inlayHints(get('inlayHints')),
        buildDirs: stringArray(get('buildDirs')),
        ehFrame: get('ehFrame') === true,
        memoryBudgetMiB: wholeNumber(get('memoryBudgetMiB'), MEMORY_BUDGET_MIB),
        live: liveOptions(get),
    };
}

/** `~` or `~/x` → the home directory (or below it); anything else unchanged. */
export function expandHome(p: string, home?: string): string {
    if (home === undefined || home === '') {
        return p;
    }
    if (p === '~') {
        return home;
    }
    if (p.startsWith('~/')) {
        return path.join(home, p.slice(2));
    }
    return p;
}

/** What server path resolution needs to know about the machine. */
export interface PathContext {
    /** The extension's install directory. */
    extensionPath: string;
    /** `process.platform`. */
    platform: string;
    /** The first workspace folder, for relative configured paths. */
    workspaceFolder?: string;
    /** The home directory, for `~/`. */
    home?: string;
    /** Whether a file exists (fs.existsSync in the extension, a stub in tests). */
    exists: (p: string) => boolean;
}

/** Where the server binary comes from, for the log. */
export type ServerSource = 'setting' | 'bundled' | 'PATH';

/** The resolved server binary. */
export interface ServerPath {
    command: string;
    source: ServerSource;
}

/** The bundled binary's path: `<extension>/bin/altcfi` (`altcfi.exe` on Windows). */
export function bundledServerPath(extensionPath: string, platform: string): string {
    return path.join(extensionPath, 'bin', platform === 'win32' ? 'altcfi.exe' : 'altcfi');
}

/**
 * The server binary: the `altcfi.server.path` setting if set (`~/` expanded, a relative path with a directory
 * part taken from the workspace folder), else the binary bundled in the extension's `bin/` if present, else
 * `altcfi`, looked up on `PATH` when spawned.
 */
export function resolveServerPath(configured: unknown, ctx: PathContext): ServerPath {
    const setting = optionalString(configured);
    if (setting !== null) {
        let p = expandHome(setting, ctx.home);
        const hasDir = p.includes('/') || (ctx.platform === 'win32' && p.includes('\\'));
        if (hasDir && !path.isAbsolute(p) && ctx.workspaceFolder !== undefined) {
            p = path.join(ctx.workspaceFolder, p);
        }
        return { command: p, source: 'setting' };
    }
    const bundled = bundledServerPath(ctx.extensionPath, ctx.platform);
    if (ctx.exists(bundled)) {
        return { command: bundled, source: 'bundled' };
    }
    return { command: ctx.platform === 'win32' ? 'altcfi.exe' : 'altcfi', source: 'PATH' };
}

/** The server's arguments: `lsp`, then `altcfi.server.extraArgs`. */
export function serverArgs(extraArgs: unknown): string[] {
    return ['lsp', ...stringArray(extraArgs)];
}

/** Settings whose change needs a server restart (all of them: they are sent only at initialization). */
export function affectsServer(changed: (section: string) => boolean): boolean {
    return changed('altcfi');
}

/** The `altcfi-table:` URI path for a table title: the title itself, path separators and control characters blanked. */
export function tableDocumentPath(title: string): string {
    // The tab shows the last path segment: keep the server's title as it reads, without path separators.
    const safe = Array.from(title, (c) => (c === '/' || c === '\\' || c.charCodeAt(0) < 0x20 ? ' ' : c))
        .join('')
        .replace(/ {2,}/g, ' ')
        .trim();
    return '/' + (safe === '' ? 'CFI table' : safe);
}
