#!/usr/bin/env python3
"""scripts/lsp-memory.py — resident memory of `altcfi lsp` with many large files of a kernel tree open.

    python3 scripts/lsp-memory.py --root SRC [--altcfi target/release/altcfi] [--files N] [--build DIR] FILE…

Starts `altcfi lsp` in the kernel source tree SRC (settings: none; `buildDirs` = [DIR] with --build, `memoryBudgetMiB`
with --budget), opens each
FILE (paths relative to SRC) as an editor would: didOpen, waits for its diagnostics, asks for inlay hints over the
whole file and a hover on its first line with code (which build the per-instruction table and the source index),
then prints the server's resident set (VmRSS) and peak (VmHWM) from /proc after every file, after all files, and
after closing them all. The last line is machine-readable: `rss_open_mb=… hwm_mb=… rss_closed_mb=…`.
"""

import argparse
import importlib.util
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('lsp_latency', os.path.join(here, 'lsp-latency.py'))
lsp_latency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lsp_latency)


def status_kb(pid, field):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', required=True)
    ap.add_argument('--altcfi', default=os.path.join(here, '..', 'target', 'release', 'altcfi'))
    ap.add_argument('--build', help='an O= build directory, given as the buildDirs setting')
    ap.add_argument('--timeout', type=float, default=120.0, help='seconds to wait for one file\'s diagnostics')
    ap.add_argument('--budget', type=int, help='the memoryBudgetMiB setting (default: the server\'s)')
    ap.add_argument('--server-log', help='write the server\'s stderr here')
    ap.add_argument('--diagnostics-only', action='store_true', help='open the files, ask for no hint or hover')
    ap.add_argument('files', nargs='+')
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    log = open(args.server_log or os.devnull, 'w')
    init = {}
    if args.build:
        init['buildDirs'] = [args.build]
    if args.budget is not None:
        init['memoryBudgetMiB'] = args.budget
    server = lsp_latency.Server(os.path.abspath(args.altcfi), root, log, init_options=init)
    pid = server.p.pid
    mb = lambda kb: kb / 1024
    uris = []
    for rel in args.files:
        path = os.path.join(root, rel)
        uri = 'file://' + path
        text = open(path, encoding='utf-8', errors='replace').read()
        started = time.monotonic()
        server.notify('textDocument/didOpen', {'textDocument': {
            'uri': uri, 'languageId': 'c', 'version': 1, 'text': text}})
        server.diagnostics(uri, lambda d: True)
        lines = text.count('\n') + 1
        if args.diagnostics_only:
            uris.append(uri)
            print(f'{rel}: {(time.monotonic() - started) * 1000:.0f} ms, rss {mb(status_kb(pid, "VmRSS")):.0f} MB',
                  flush=True)
            continue
        server.request('textDocument/inlayHint', {'textDocument': {'uri': uri}, 'range': {
            'start': {'line': 0, 'character': 0}, 'end': {'line': lines, 'character': 0}}})
        server.request('textDocument/hover', {'textDocument': {'uri': uri},
                                              'position': {'line': lines // 2, 'character': 1}})
        uris.append(uri)
        print(f'{rel}: {(time.monotonic() - started) * 1000:.0f} ms, rss {mb(status_kb(pid, "VmRSS")):.0f} MB',
                  flush=True)
    time.sleep(1.0)
    rss_open = mb(status_kb(pid, 'VmRSS'))
    hwm = mb(status_kb(pid, 'VmHWM'))
    for uri in uris:
        server.notify('textDocument/didClose', {'textDocument': {'uri': uri}})
    time.sleep(2.0)
    rss_closed = mb(status_kb(pid, 'VmRSS'))
    print(f'{len(uris)} files open: rss {rss_open:.0f} MB, peak {hwm:.0f} MB; all closed: rss {rss_closed:.0f} MB')
    print(f'rss_open_mb={rss_open:.0f} hwm_mb={hwm:.0f} rss_closed_mb={rss_closed:.0f}')
    server.stop()


if __name__ == '__main__':
    sys.exit(main())
