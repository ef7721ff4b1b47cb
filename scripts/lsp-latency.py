#!/usr/bin/env python3
"""scripts/lsp-latency.py — time from an object's change to `publishDiagnostics` in `altcfi lsp`.

    python3 scripts/lsp-latency.py [--altcfi target/release/altcfi] [--text-kb 1024] [--runs 5]

Builds two versions of one generated object (scripts/gen-big-asm.py, `-g`, a conflict in every 20th resp. 50th
function) with a compile_commands.json, then measures, each --runs times and reported as min / median / max:

- open → diagnostics: a fresh server opens the source (server start not included);
- object change → diagnostics, with `didSave`: the object is replaced (written to a temporary file and renamed over
  it, as a build would) by the other version and `didSave` is sent for the source at once (a build-on-save);
- object change → diagnostics, watcher only: the same without `didSave` (the server's own file watcher);
- hover right after those diagnostics: a hover on a conflict line, sent as soon as the diagnostics arrive (the
  server may still be building the per-instruction table hover needs), and object change → that hover answered.

A change counts as seen when diagnostics with the other version's number of conflicts arrive. The servers' stderr
goes to a log file (--server-log to keep it), whose end is printed if the script fails.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


class Server:
    """`altcfi lsp` in `root`, initialised, with its stderr in `log`."""

    def __init__(self, altcfi, root, log, init_options=None):
        self.p = subprocess.Popen([altcfi, 'lsp'], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=log)
        self.next_id = 1
        params = {'processId': None, 'rootUri': 'file://' + root,
                  'workspaceFolders': [{'uri': 'file://' + root, 'name': 'ws'}], 'capabilities': {}}
        if init_options:
            params['initializationOptions'] = init_options
        self.request('initialize', params)
        self.send({'jsonrpc': '2.0', 'method': 'initialized', 'params': {}})

    def send(self, msg):
        body = json.dumps(msg).encode()
        self.p.stdin.write(b'Content-Length: %d\r\n\r\n' % len(body) + body)
        self.p.stdin.flush()

    def recv(self):
        length = None
        while True:
            line = self.p.stdout.readline()
            if not line:
                sys.exit('lsp-latency: the server ended')
            line = line.strip()
            if not line:
                break
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':')[1])
        m = json.loads(self.p.stdout.read(length))
        if 'id' in m and 'method' in m:  # a server request (progress, registration): answer it
            self.send({'jsonrpc': '2.0', 'id': m['id'], 'result': None})
        return m

    def notify(self, method, params):
        self.send({'jsonrpc': '2.0', 'method': method, 'params': params})

    def request(self, method, params):
        i = self.next_id
        self.next_id += 1
        self.send({'jsonrpc': '2.0', 'id': i, 'method': method, 'params': params})
        while True:
            m = self.recv()
            if m.get('id') == i and 'method' not in m:
                return m.get('result')

    def diagnostics(self, uri, pred):
        """Reads until diagnostics for `uri` satisfy `pred`; returns them."""
        while True:
            m = self.recv()
            if m.get('method') == 'textDocument/publishDiagnostics' and m['params']['uri'] == uri \
                    and pred(m['params']['diagnostics']):
                return m['params']['diagnostics']

    def stop(self):
        self.request('shutdown', None)
        self.notify('exit', None)
        self.p.wait(timeout=10)


def conflicts(diags):
    return [d for d in diags if 'conflict' in d.get('message', '')]


def spread(ms):
    return f'min {min(ms):.0f} / median {statistics.median(ms):.0f} / max {max(ms):.0f} ms ({len(ms)} runs)'


def main():
    ap = argparse.ArgumentParser()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument('--altcfi', default=os.path.join(repo, 'target/release/altcfi'))
    ap.add_argument('--text-kb', default='1024')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--server-log', help="keep the servers' stderr in this file")
    ap.add_argument('--conflict-every', default='20,50',
                    help='the two versions: a conflict in every Nth function (default 20,50)')
    a = ap.parse_args()
    altcfi = os.path.abspath(a.altcfi)
    root = os.path.realpath(tempfile.mkdtemp(prefix='altcfi-lsp-latency.'))
    log_path = os.path.abspath(a.server_log) if a.server_log else os.path.join(root, 'server.log')
    ok = False
    try:
        first, second = a.conflict_every.split(',')
        for every, out in ((first, 'a.o'), (second, 'b.o')):
            subprocess.run([sys.executable, os.path.join(repo, 'scripts/gen-big-asm.py'), '--text-kb', a.text_kb,
                            '--conflict-every', every, '-o', 'big.S'], cwd=root, check=True)
            subprocess.run(['gcc', '-c', '-g', '-I', os.path.join(repo, 'tests/fixtures/alt'), 'big.S', '-o', out],
                           cwd=root, check=True)
        obj = os.path.join(root, 'big.o')
        shutil.copy(os.path.join(root, 'a.o'), obj)
        with open(os.path.join(root, 'compile_commands.json'), 'w') as f:
            json.dump([{'directory': root, 'file': 'big.S', 'output': 'big.o'}], f)
        src = os.path.join(root, 'big.S')
        uri = 'file://' + src
        with open(src) as f:
            text = f.read()
        log = open(log_path, 'w')

        def open_doc(s):
            s.notify('textDocument/didOpen', {
                'textDocument': {'uri': uri, 'languageId': 'asm', 'version': 1, 'text': text}})
            return s.diagnostics(uri, lambda d: conflicts(d))

        # open → diagnostics, each on a fresh server (nothing cached).
        opens = []
        for _ in range(a.runs):
            s = Server(altcfi, root, log)
            t = time.monotonic()
            n_a = len(conflicts(open_doc(s)))
            opens.append((time.monotonic() - t) * 1000)
            s.stop()

        s = Server(altcfi, root, log)
        open_doc(s)
        n = {'a.o': n_a}
        results = {'save': [], 'watch': [], 'hover': [], 'change-hover': []}
        cur = 'a.o'
        # The first change (learns b.o's count) is a warm-up; then alternate the modes.
        for i in range(a.runs * 2 + 1):
            mode = 'save' if i % 2 == 1 or i == 0 else 'watch'
            nxt = 'b.o' if cur == 'a.o' else 'a.o'
            time.sleep(0.3)  # let the previous version's background work finish
            tmp = obj + '.tmp'
            shutil.copy(os.path.join(root, nxt), tmp)
            os.replace(tmp, obj)
            t = time.monotonic()
            if mode == 'save':
                s.notify('textDocument/didSave', {'textDocument': {'uri': uri}})
            if nxt in n:
                diags = s.diagnostics(uri, lambda d: len(conflicts(d)) == n[nxt])
            else:  # first sight of b.o: any conflict count other than a.o's
                diags = s.diagnostics(uri, lambda d: conflicts(d) and len(conflicts(d)) != n[cur])
                n[nxt] = len(conflicts(diags))
            seen = time.monotonic()
            line = conflicts(diags)[0]['range']['start']['line']
            hover = s.request('textDocument/hover', {'textDocument': {'uri': uri},
                                                     'position': {'line': line, 'character': 0}})
            hovered = time.monotonic()
            if not hover or 'conflict' not in json.dumps(hover):
                sys.exit(f'lsp-latency: no conflict in the hover of line {line}: {hover}')
            if i > 0:
                results[mode].append((seen - t) * 1000)
                results['hover'].append((hovered - seen) * 1000)
                results['change-hover'].append((hovered - t) * 1000)
            cur = nxt
        s.stop()
        size = os.path.getsize(os.path.join(root, 'a.o')) // 1024
        print(f'object {size} KiB ({a.text_kb} KiB text), conflicts {n["a.o"]}/{n["b.o"]}, {altcfi}')
        print(f'  open → diagnostics:                      {spread(opens)}')
        print(f'  object change + didSave → diagnostics:   {spread(results["save"])}')
        print(f'  object change (watcher) → diagnostics:   {spread(results["watch"])}')
        print(f'  hover right after those diagnostics:     {spread(results["hover"])}')
        print(f'  object change → that hover answered:     {spread(results["change-hover"])}')
        ok = True
    finally:
        if not ok and os.path.exists(log_path):
            with open(log_path) as f:
                sys.stderr.write(f.read()[-4000:])
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
