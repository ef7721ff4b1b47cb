#!/usr/bin/env python3
"""scripts/live-latency.py — live mode of `altcfi lsp`: keystroke pause → published diagnostics, and a quick-fix
request answered with every candidate checked.

    python3 scripts/live-latency.py [--altcfi target/release/altcfi] [--runs 20]
    python3 scripts/live-latency.py --compile-commands BUILD/compile_commands.json --file SRC/arch/x86/entry/entry_64.S

Default: a temporary workspace with examples/demo.S (and the header it includes) and a compile_commands.json; the
demo is opened, then --runs times its buffer is changed with didChange (never saved), alternating the conflicting
replacement of save_fl_bad and a clean one, and the time from the didChange to the publishDiagnostics that has
(resp. no longer has) the `altcfi (unsaved)` conflict is taken — the server's 100 ms debounce included, as an
editor user sees it. Then textDocument/codeAction on the conflict is timed (fresh version each run, so nothing is
cached). Reported as min / median / max.

With --compile-commands and --file: the file is opened in a workspace rooted at the database's directory and its
buffer is changed --runs times by appending a comment line, each time after a change that appends a line that does
not assemble (so that every result differs from the one before and is published), timing didChange → the
publishDiagnostics of each. The live compile writes nothing into the build tree (dependency files and the object go to a
private temporary directory).
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('lsp_latency', os.path.join(HERE, 'lsp-latency.py'))
lsp_latency = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lsp_latency)
Server, spread = lsp_latency.Server, lsp_latency.spread

CONFLICT = '"push %rcx; push %rcx; pop %rax; pop %rcx"'
CLEAN = '"call xen_save_fl"'


def unsaved_conflicts(diags):
    return [d for d in diags if d.get('code') == 'alt-stack-conflict' and d.get('source') == 'altcfi (unsaved)']


def change(server, uri, version, text):
    server.notify('textDocument/didChange', {'textDocument': {'uri': uri, 'version': version},
                                             'contentChanges': [{'text': text}]})


def demo(a, log):
    repo = os.path.dirname(HERE)
    root = os.path.realpath(tempfile.mkdtemp(prefix='altcfi-live-bench-'))
    try:
        for rel in ['examples/demo.S', 'tests/fixtures/alt/alt-macros-612.h', 'tests/fixtures/alt/fixture-common.h']:
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            shutil.copy(os.path.join(repo, rel), os.path.join(root, rel))
        with open(os.path.join(root, 'compile_commands.json'), 'w') as f:
            json.dump([{'directory': root, 'file': 'examples/demo.S',
                        'arguments': ['gcc', '-c', '-g', 'examples/demo.S', '-o', 'build/demo.o']}], f)
        src = os.path.join(root, 'examples/demo.S')
        conflicting = open(src).read()
        clean = conflicting.replace(CONFLICT, CLEAN)
        with open(src, 'w') as f:
            f.write(clean)
        uri = 'file://' + src
        s = Server(a.altcfi, root, log)
        s.notify('textDocument/didOpen', {'textDocument': {'uri': uri, 'languageId': 'asm', 'version': 1,
                                                           'text': clean}})
        s.diagnostics(uri, lambda d: True)
        version, typed = 1, []
        for i in range(a.runs):
            version += 1
            want_conflict = i % 2 == 0
            t0 = time.perf_counter()
            change(s, uri, version, conflicting if want_conflict else clean)
            s.diagnostics(uri, lambda d: bool(unsaved_conflicts(d)) == want_conflict)
            typed.append((time.perf_counter() - t0) * 1000)
        actions = []
        for i in range(max(3, a.runs // 4)):
            # A new version each time: the server caches fixes per version and line.
            version += 1
            text = conflicting + f'/* {i} */\n'
            change(s, uri, version, text)
            diags = s.diagnostics(uri, lambda d: bool(unsaved_conflicts(d)))
            d = unsaved_conflicts(diags)[0]
            t0 = time.perf_counter()
            res = s.request('textDocument/codeAction', {'textDocument': {'uri': uri}, 'range': d['range'],
                                                       'context': {'diagnostics': [d]}})
            actions.append((time.perf_counter() - t0) * 1000)
            if not res:
                sys.exit('live-latency: no quick fix offered for the demo conflict')
        s.stop()
        print(f'examples/demo.S keystroke pause → unsaved diagnostics: {spread(typed)}')
        print(f'examples/demo.S code action (every candidate checked, {len(res)} fixes): {spread(actions)}')
    finally:
        shutil.rmtree(root, ignore_errors=True)


def one_file(a, log):
    db = os.path.realpath(a.compile_commands)
    root = os.path.dirname(db)
    src = os.path.realpath(a.file)
    text = open(src).read()
    uri = 'file://' + src
    s = Server(a.altcfi, root, log)
    s.notify('textDocument/didOpen', {'textDocument': {'uri': uri, 'languageId': 'asm', 'version': 1, 'text': text}})
    s.diagnostics(uri, lambda d: True)
    version, typed, broken = 1, [], []
    is_error = lambda d: d.get('code') == 'compile-error'
    for i in range(2 * a.runs):
        version += 1
        # Alternately a line that does not assemble and a comment: each result differs from the one before, so
        # each is published (the buffer that compiles is the measurement, the error is the way back to it).
        bad = i % 2 == 0
        t0 = time.perf_counter()
        change(s, uri, version, text + ('\tpusx %rcx\n' if bad else f'/* altcfi live bench {i} */\n'))
        diags = s.diagnostics(uri, lambda d: any(map(is_error, d)) if bad else not any(
            is_error(x) or x.get('message', '').startswith('(stale)') for x in d))
        (broken if bad else typed).append((time.perf_counter() - t0) * 1000)
    s.stop()
    unsaved = sum(1 for d in diags if d.get('source') == 'altcfi (unsaved)')
    print(f'{os.path.basename(src)} keystroke pause → diagnostics of the text that compiles ({unsaved} findings): '
          f'{spread(typed)}')
    print(f'{os.path.basename(src)} keystroke pause → the compile error: {spread(broken)}')


def main():
    repo = os.path.dirname(HERE)
    ap = argparse.ArgumentParser()
    ap.add_argument('--altcfi', default=os.path.join(repo, 'target/release/altcfi'))
    ap.add_argument('--runs', type=int, default=20)
    ap.add_argument('--compile-commands')
    ap.add_argument('--file')
    ap.add_argument('--server-log')
    a = ap.parse_args()
    log_path = a.server_log or tempfile.mktemp(prefix='altcfi-live-bench-', suffix='.log')
    with open(log_path, 'w') as log:
        try:
            if a.compile_commands and a.file:
                one_file(a, log)
            else:
                demo(a, log)
        except BaseException:
            log.flush()
            sys.stderr.write(open(log_path).read()[-3000:])
            raise
    if not a.server_log:
        os.unlink(log_path)


if __name__ == '__main__':
    main()
