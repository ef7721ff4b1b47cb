#!/usr/bin/env python3
"""scripts/lsp-latency.py — time from an object's change to `publishDiagnostics` in `altcfi lsp`.

    python3 scripts/lsp-latency.py [--altcfi target/release/altcfi] [--text-kb 1024] [--runs 5]

Builds two versions of one generated object (scripts/gen-big-asm.py, `-g`, a conflict in every 20th resp. 50th
function) with a compile_commands.json, starts `altcfi lsp` there, opens the source and waits for its diagnostics
(open → diagnostics), then --runs times: replaces the object with the other version, sends `didSave` for the source
(as a build-on-save would be followed by) and times until diagnostics with the other version's count arrive.
Prints the medians.
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


def send(p, msg):
    body = json.dumps(msg).encode()
    p.stdin.write(b'Content-Length: %d\r\n\r\n' % len(body) + body)
    p.stdin.flush()


def recv(p):
    length = None
    while True:
        line = p.stdout.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        if line.lower().startswith(b'content-length:'):
            length = int(line.split(b':')[1])
    return json.loads(p.stdout.read(length))


def conflicts(msg):
    return [d for d in msg['params']['diagnostics'] if 'conflict' in d.get('message', '')]


def wait_diags(p, uri, count):
    while True:
        m = recv(p)
        if m is None:
            sys.exit('lsp-latency: server ended')
        if 'id' in m and 'method' in m:  # a server request (progress, registration): answer it
            send(p, {'jsonrpc': '2.0', 'id': m['id'], 'result': None})
            continue
        if m.get('method') == 'textDocument/publishDiagnostics' and m['params']['uri'] == uri:
            if len(conflicts(m)) == count:
                return


def main():
    ap = argparse.ArgumentParser()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument('--altcfi', default=os.path.join(repo, 'target/release/altcfi'))
    ap.add_argument('--text-kb', default='1024')
    ap.add_argument('--runs', type=int, default=5)
    a = ap.parse_args()
    root = os.path.realpath(tempfile.mkdtemp(prefix='altcfi-lsp-latency.'))
    try:
        for every, out in (('20', 'a.o'), ('50', 'b.o')):
            subprocess.run([sys.executable, os.path.join(repo, 'scripts/gen-big-asm.py'), '--text-kb', a.text_kb,
                            '--conflict-every', every, '-o', 'big.S'], cwd=root, check=True)
            subprocess.run(['gcc', '-c', '-g', '-I', os.path.join(repo, 'tests/fixtures/alt'), 'big.S', '-o', out],
                           cwd=root, check=True)
        shutil.copy(os.path.join(root, 'a.o'), os.path.join(root, 'big.o'))
        with open(os.path.join(root, 'compile_commands.json'), 'w') as f:
            json.dump([{'directory': root, 'file': 'big.S', 'output': 'big.o'}], f)
        src = os.path.join(root, 'big.S')
        uri = 'file://' + src
        p = subprocess.Popen([a.altcfi, 'lsp'], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        send(p, {'jsonrpc': '2.0', 'id': 1, 'method': 'initialize', 'params': {
            'processId': None, 'rootUri': 'file://' + root,
            'workspaceFolders': [{'uri': 'file://' + root, 'name': 'ws'}], 'capabilities': {}}})
        while recv(p).get('id') != 1:
            pass
        send(p, {'jsonrpc': '2.0', 'method': 'initialized', 'params': {}})
        # The server's own count for each version: learnt from the first diagnostics of each.
        t = time.monotonic()
        with open(src) as f:
            text = f.read()
        send(p, {'jsonrpc': '2.0', 'method': 'textDocument/didOpen', 'params': {
            'textDocument': {'uri': uri, 'languageId': 'asm', 'version': 1, 'text': text}}})
        n = {}
        while 'a.o' not in n:
            m = recv(p)
            if 'id' in m and 'method' in m:
                send(p, {'jsonrpc': '2.0', 'id': m['id'], 'result': None})
            elif m.get('method') == 'textDocument/publishDiagnostics' and m['params']['uri'] == uri \
                    and conflicts(m):
                n['a.o'] = len(conflicts(m))
        open_ms = (time.monotonic() - t) * 1000
        times = []
        cur = 'a.o'
        for i in range(a.runs * 2 + 1):
            nxt = 'b.o' if cur == 'a.o' else 'a.o'
            tmp = os.path.join(root, 'big.o.tmp')
            shutil.copy(os.path.join(root, nxt), tmp)
            os.replace(tmp, os.path.join(root, 'big.o'))
            t = time.monotonic()
            send(p, {'jsonrpc': '2.0', 'method': 'textDocument/didSave', 'params': {'textDocument': {'uri': uri}}})
            if nxt not in n:  # first sight of b.o: any conflict count other than a.o's
                while True:
                    m = recv(p)
                    if 'id' in m and 'method' in m:
                        send(p, {'jsonrpc': '2.0', 'id': m['id'], 'result': None})
                    elif m.get('method') == 'textDocument/publishDiagnostics' and m['params']['uri'] == uri \
                            and conflicts(m) and len(conflicts(m)) != n[cur]:
                        n[nxt] = len(conflicts(m))
                        break
            else:
                wait_diags(p, uri, n[nxt])
            if i > 0:  # the first change is a warm-up
                times.append((time.monotonic() - t) * 1000)
            cur = nxt
        send(p, {'jsonrpc': '2.0', 'id': 2, 'method': 'shutdown', 'params': None})
        send(p, {'jsonrpc': '2.0', 'method': 'exit', 'params': None})
        p.wait(timeout=10)
        size = os.path.getsize(os.path.join(root, 'a.o')) // 1024
        print(f'object {size} KiB ({a.text_kb} KiB text), conflicts {n["a.o"]}/{n["b.o"]}: '
              f'open → diagnostics {open_ms:.0f} ms; object change → diagnostics median '
              f'{statistics.median(times):.0f} ms (min {min(times):.0f}, max {max(times):.0f}, {len(times)} changes)')
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
