// Unit tests of settings → initializationOptions and server path resolution, under node's test runner (no VS Code).

import { strict as assert } from 'assert';
import * as path from 'path';
import { describe, it } from 'node:test';
import {
    affectsServer,
    bundledServerPath,
    expandHome,
    initializationOptions,
    resolveServerPath,
    serverArgs,
    tableDocumentPath,
} from '../src/config';

/** A settings reader over a plain map, as `WorkspaceConfiguration.get` would answer. */
function reader(values: Record<string, unknown>): (key: string) => unknown {
    return (key) => values[key];
}

describe('initializationOptions', () => {
    it('gives the defaults when nothing is set', () => {
        assert.deepEqual(initializationOptions(reader({})), {
            objectGlobs: [],
            framePointer: false,
            kernel: 'auto',
            cpufeatures: null,
            inlayHints: true,
            buildDirs: [],
            ehFrame: false,
            memoryBudgetMiB: 32,
            live: { enable: true, compilers: ['gcc', 'cc', 'clang', 'as'], timeoutMs: 10000 },
        });
    });

    it('passes every setting through', () => {
        const opts = initializationOptions(
            reader({
                objectGlobs: ['build/**/*.o', 'arch/x86/entry/*.o'],
                framePointer: true,
                kernel: '6.1',
                cpufeatures: '/src/linux/arch/x86/include/asm/cpufeatures.h',
                inlayHints: false,
                buildDirs: ['out'],
                ehFrame: true,
                memoryBudgetMiB: 100,
                'live.enable': false,
                'live.compilers': ['gcc-12'],
                'live.timeoutMs': 2500,
            }),
        );
        assert.deepEqual(opts, {
            objectGlobs: ['build/**/*.o', 'arch/x86/entry/*.o'],
            framePointer: true,
            kernel: '6.1',
            cpufeatures: '/src/linux/arch/x86/include/asm/cpufeatures.h',
            inlayHints: false,
            buildDirs: ['out'],
            ehFrame: true,
            memoryBudgetMiB: 100,
            live: { enable: false, compilers: ['gcc-12'], timeoutMs: 2500 },
        });
    });

    it('matches the server contract exactly (keys and JSON types)', () => {
        const opts = initializationOptions(reader({ kernel: '6.12', cpufeatures: 'x.h' }));
        assert.deepEqual(Object.keys(opts).sort(), [
            'buildDirs',
            'cpufeatures',
            'ehFrame',
            'framePointer',
            'inlayHints',
            'kernel',
            'live',
            'memoryBudgetMiB',
            'objectGlobs',
        ]);
        const json = JSON.parse(JSON.stringify(opts)) as Record<string, unknown>;
        assert.equal(json.kernel, '6.12');
        assert.equal(json.cpufeatures, 'x.h');
    });

    it('replaces values of the wrong type with defaults', () => {
        const opts = initializationOptions(
            reader({
                objectGlobs: 'build/*.o',
                framePointer: 'yes',
                kernel: '5.10',
                cpufeatures: 42,
                inlayHints: 'no',
                buildDirs: [1, 'ok', '  ', null],
                ehFrame: 'yes',
                memoryBudgetMiB: -1,
                'live.enable': 'no',
                'live.compilers': 'gcc',
                'live.timeoutMs': -1,
            }),
        );
        assert.deepEqual(opts, {
            objectGlobs: [],
            framePointer: false,
            kernel: 'auto',
            cpufeatures: null,
            inlayHints: true,
            buildDirs: ['ok'],
            ehFrame: false,
            memoryBudgetMiB: 32,
            live: { enable: true, compilers: ['gcc', 'cc', 'clang', 'as'], timeoutMs: 10000 },
        });
    });

    it('passes the inlay-hint density on', () => {
        for (const v of ['all', 'changes', 'off', false, true] as const) {
            assert.equal(initializationOptions(reader({ inlayHints: v })).inlayHints, v);
        }
    });

    it('sends an empty cpufeatures path as null and expands ~/', () => {
        assert.equal(initializationOptions(reader({ cpufeatures: '  ' })).cpufeatures, null);
        assert.equal(
            initializationOptions(reader({ cpufeatures: '~/linux/cpufeatures.h' }), '/home/k').cpufeatures,
            path.join('/home/k', 'linux/cpufeatures.h'),
        );
    });
});

describe('resolveServerPath', () => {
    const ext = '/ext/altcfi-0.1.0';
    const none = (): boolean => false;
    const all = (): boolean => true;

    it('uses the setting when set, even with a bundled binary', () => {
        assert.deepEqual(
            resolveServerPath('/opt/altcfi/bin/altcfi', { extensionPath: ext, platform: 'linux', exists: all }),
            { command: '/opt/altcfi/bin/altcfi', source: 'setting' },
        );
    });

    it('expands ~/ and resolves a relative setting against the workspace folder', () => {
        assert.equal(
            resolveServerPath('~/bin/altcfi', { extensionPath: ext, platform: 'linux', home: '/home/k', exists: none })
                .command,
            path.join('/home/k', 'bin/altcfi'),
        );
        assert.equal(
            resolveServerPath('target/debug/altcfi', {
                extensionPath: ext,
                platform: 'linux',
                workspaceFolder: '/src/altcfi',
                exists: none,
            }).command,
            path.join('/src/altcfi', 'target/debug/altcfi'),
        );
    });

    it('keeps a bare command name for PATH lookup', () => {
        assert.deepEqual(
            resolveServerPath('altcfi-nightly', {
                extensionPath: ext,
                platform: 'linux',
                workspaceFolder: '/w',
                exists: none,
            }),
            { command: 'altcfi-nightly', source: 'setting' },
        );
    });

    it('prefers the bundled binary when the setting is empty', () => {
        const seen: string[] = [];
        const exists = (p: string): boolean => {
            seen.push(p);
            return p === path.join(ext, 'bin', 'altcfi');
        };
        for (const configured of [undefined, null, '', '   ']) {
            assert.deepEqual(resolveServerPath(configured, { extensionPath: ext, platform: 'linux', exists }), {
                command: path.join(ext, 'bin', 'altcfi'),
                source: 'bundled',
            });
        }
        assert.ok(seen.every((p) => p === path.join(ext, 'bin', 'altcfi')));
    });

    it('falls back to altcfi on PATH without a bundled binary', () => {
        assert.deepEqual(resolveServerPath(undefined, { extensionPath: ext, platform: 'linux', exists: none }), {
            command: 'altcfi',
            source: 'PATH',
        });
        assert.deepEqual(resolveServerPath(undefined, { extensionPath: ext, platform: 'win32', exists: none }), {
            command: 'altcfi.exe',
            source: 'PATH',
        });
    });

    it('names the bundled binary per platform', () => {
        assert.equal(bundledServerPath(ext, 'linux'), path.join(ext, 'bin', 'altcfi'));
        assert.equal(bundledServerPath(ext, 'win32'), path.join(ext, 'bin', 'altcfi.exe'));
    });
});

describe('server command line and helpers', () => {
    it('starts with lsp, then the extra arguments', () => {
        assert.deepEqual(serverArgs(undefined), ['lsp']);
        assert.deepEqual(serverArgs(['--log', 'debug', 3]), ['lsp', '--log', 'debug']);
    });

    it('restarts for altcfi settings only', () => {
        assert.equal(affectsServer((s) => s === 'altcfi'), true);
        assert.equal(affectsServer((s) => s === 'editor'), false);
    });

    it('expands only a leading ~', () => {
        assert.equal(expandHome('~', '/h'), '/h');
        assert.equal(expandHome('a/~/b', '/h'), 'a/~/b');
        assert.equal(expandHome('~/x', undefined), '~/x');
    });

    it('makes table document paths from titles', () => {
        assert.equal(tableDocumentPath('CFI table: save_fl_bad (demo.o)'), '/CFI table: save_fl_bad (demo.o)');
        assert.equal(tableDocumentPath('a/b\\c'), '/a b c');
        assert.equal(tableDocumentPath('/'), '/CFI table');
    });
});
