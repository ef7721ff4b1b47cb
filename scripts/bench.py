#!/usr/bin/env python3
"""scripts/bench.py — the measuring half of scripts/bench.sh (run that; it builds and installs what this needs).

Builds the corpus, times objtool 6.12 --orc against altcfi check/--no-source/orc with hyperfine, measures peak RSS
with GNU time, and writes a Markdown report (DIR/report.md) plus the raw hyperfine JSON (DIR/hyperfine/).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f'bench: {msg}', file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def oracle_env():
    env = {}
    path = os.path.join(os.environ.get('ALTCFI_CACHE', os.path.join(REPO, '.cache')), 'oracle', 'env')
    with open(path) as f:
        for line in f:
            m = re.match(r'^(\w+)=(.*)$', line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def exec_text_size(path):
    """Sum of SHF_EXECINSTR section sizes of an ELF64 file."""
    with open(path, 'rb') as f:
        data = f.read()
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum = struct.unpack_from('<HH', data, 0x3a)
    total = 0
    for i in range(shnum):
        off = shoff + i * shentsize
        _name, _ty, flags, _addr, _off, size = struct.unpack_from('<IIQQQQ', data, off)
        if flags & 4:
            total += size
    return total


def fixture_objects(outdir):
    """Every test fixture for the 6.12 oracle (the 6.1-layout ones are for objtool 6.1), built with build.sh."""
    objs = []
    os.makedirs(outdir, exist_ok=True)
    for sub in ('core', 'alt', 'lines'):
        d = os.path.join(REPO, 'tests', 'fixtures', sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(('.S', '.c')):
                continue
            src = os.path.join(d, name)
            with open(src, errors='replace') as f:
                head = f.read(4096)
            if re.search(r'altcfi-oracle:\s*61\s*$', head, re.M):
                continue
            r = subprocess.run(['sh', os.path.join(REPO, 'tests', 'fixtures', 'build.sh'), src,
                                os.path.join(outdir, sub)], capture_output=True, text=True)
            if r.returncode == 0:
                objs.append(r.stdout.strip().splitlines()[-1])
    return objs


def generated_object(outdir, kb, conflict_every=0, debug=False):
    os.makedirs(outdir, exist_ok=True)
    tag = f'big-{kb}k' + (f'-conflicts{conflict_every}' if conflict_every else '') + ('-g' if debug else '')
    src, obj = os.path.join(outdir, tag + '.S'), os.path.join(outdir, tag + '.o')
    gen = os.path.join(REPO, 'scripts', 'gen-big-asm.py')
    if not os.path.exists(obj) or os.path.getmtime(obj) < os.path.getmtime(gen):
        log(f'generating {tag}')
        sh([sys.executable, gen, '--text-kb', str(kb), '--conflict-every', str(conflict_every), '-o', src])
        sh(['gcc', '-c'] + (['-g'] if debug else []) +
           ['-I', os.path.join(REPO, 'tests', 'fixtures', 'alt'), src, '-o', obj])
    return obj


def q(s):
    return "'" + s.replace("'", "'\\''") + "'"


class Bench:
    def __init__(self, a):
        self.a = a
        self.objtool = oracle_env()['OBJTOOL_612']
        self.altcfi = a.altcfi
        self.out = a.out
        self.hf_dir = os.path.join(self.out, 'hyperfine')
        os.makedirs(self.hf_dir, exist_ok=True)
        helptext = subprocess.run([self.altcfi, 'check', '--help'], capture_output=True, text=True).stdout
        self.has_no_source = '--no-source' in helptext

    def tools(self, objs, copydir):
        """name -> (prepare, command) for a group of objects, one process per object like a build would run."""
        loop = lambda body, files: f'for f in {" ".join(q(o) for o in files)}; do {body}; done >/dev/null 2>&1'
        copies = [os.path.join(copydir, f'{i}.o') for i in range(len(objs))]
        prep = f'rm -rf {q(copydir)} && mkdir -p {q(copydir)} && ' + ' && '.join(
            f'cp {q(o)} {q(c)}' for o, c in zip(objs, copies))
        t = {'objtool --orc': (prep, loop(f'{q(self.objtool)} --orc "$f"', copies))}
        if self.has_no_source:
            t['check --no-source'] = (None, loop(f'{q(self.altcfi)} check --no-source "$f"', objs))
        t['check'] = (None, loop(f'{q(self.altcfi)} check "$f"', objs))
        t['orc'] = (None, loop(f'{q(self.altcfi)} orc "$f"', objs))
        return t

    def hyperfine(self, tag, tools, runs):
        path = os.path.join(self.hf_dir, tag + '.json')
        cmd = ['hyperfine', '-i', '--style', 'none', '--warmup', '1', '--runs', str(runs), '--export-json', path]
        for name, (prep, command) in tools.items():
            if prep:
                cmd += ['--prepare', prep]
            else:
                cmd += ['--prepare', 'true']
            cmd += ['-n', name, command]
        sh(cmd, stdout=subprocess.DEVNULL)
        with open(path) as f:
            res = json.load(f)['results']
        return {r['command']: (statistics.median(r['times']), r['stddev'] or 0.0, r['mean']) for r in res}

    def maxrss_kb(self, argv_list, copy_from=None, reps=3):
        """Median over reps of GNU time's %M (KiB) for the command; objtool gets a fresh copy each time."""
        vals = []
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as td:
                argv = list(argv_list)
                if copy_from:
                    c = os.path.join(td, 'copy.o')
                    shutil.copy(copy_from, c)
                    argv = [x if x != '{copy}' else c for x in argv]
                tf = os.path.join(td, 'time')
                subprocess.run(['/usr/bin/time', '-f', '%M', '-o', tf] + argv,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with open(tf) as f:
                    vals.append(int(f.read().strip().splitlines()[-1]))
        return statistics.median(vals)

    def rss(self, objs, reps):
        """Largest (over the group's objects) median peak RSS per tool, in KiB, and the size of that object."""
        out = {}
        for name in self.tool_names():
            best = (0, 0)
            for o in objs:
                if name == 'objtool --orc':
                    kb = self.maxrss_kb([self.objtool, '--orc', '{copy}'], copy_from=o, reps=reps)
                elif name == 'check --no-source':
                    kb = self.maxrss_kb([self.altcfi, 'check', '--no-source', o], reps=reps)
                elif name == 'check':
                    kb = self.maxrss_kb([self.altcfi, 'check', o], reps=reps)
                else:
                    kb = self.maxrss_kb([self.altcfi, 'orc', o], reps=reps)
                if kb > best[0]:
                    best = (kb, os.path.getsize(o))
            out[name] = best
        return out

    def tool_names(self):
        return ['objtool --orc'] + (['check --no-source'] if self.has_no_source else []) + ['check', 'orc']

    def orc_identical(self, obj):
        with tempfile.TemporaryDirectory() as td:
            c = os.path.join(td, os.path.basename(obj))
            shutil.copy(obj, c)
            subprocess.run([self.objtool, '--orc', c], capture_output=True)
            theirs = subprocess.run([self.objtool, '--dump=orc', c], capture_output=True, text=True).stdout
        ours = subprocess.run([self.altcfi, 'orc', obj], capture_output=True, text=True).stdout
        return theirs == ours and len(ours) > 0


def machine():
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    return f'{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--altcfi', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--sizes', type=int, nargs='+', default=[256, 1024, 4096, 16384])
    ap.add_argument('--kmod', required=True, help='directory with the tests/kmod objects (scripts/build-kmod.sh)')
    ap.add_argument('--no-lsp-memory', dest='lsp_memory', action='store_false',
                    help='skip the language server memory measurement in the kernel tree')
    ap.add_argument('--lsp', nargs='*', default=['256:20,50', '256:400,1000', '1024:20,50'],
                    help='LSP latency runs, KIB:A,B (KiB of text, conflict in every A-th/B-th function); none: skip')
    a = ap.parse_args()
    a.lsp = [tuple(x.split(':', 1)) for x in a.lsp]
    b = Bench(a)
    corpus = os.path.join(a.out, 'corpus')

    groups = []  # (label, [objects], is_generated)
    fx = fixture_objects(os.path.join(corpus, 'fixtures'))
    groups.append((f'test fixtures ({len(fx)} objects)', fx, False))
    km = sorted(os.path.join(a.kmod, f) for f in os.listdir(a.kmod)
                if f.endswith('.o') and not f.endswith('.mod.o') and f != 'altcfi_kmod.o')
    groups.append((f'kmod objects ({len(km)} objects)', km, False))
    for kb in a.sizes:
        groups.append((f'generated {kb} KiB', [generated_object(os.path.join(corpus, 'gen'), kb)], True))
    src_kb = 1024 if 1024 in a.sizes else a.sizes[0]
    conf = generated_object(os.path.join(corpus, 'gen'), src_kb, conflict_every=20, debug=True)
    groups.append((f'generated {src_kb} KiB, -g, a conflict in every 20th function', [conf], True))

    rows = []
    for label, objs, generated in groups:
        tag = re.sub(r'[^A-Za-z0-9]+', '-', label).strip('-')
        text = sum(exec_text_size(o) for o in objs)
        size = sum(os.path.getsize(o) for o in objs)
        runs = a.runs if text < 8 << 20 else max(3, a.runs // 2)
        log(f'{label}: {len(objs)} object(s), {size >> 10} KiB, .text+replacements {text >> 10} KiB, {runs} runs')
        times = b.hyperfine(tag, b.tools(objs, os.path.join(a.out, 'copies', tag)), runs)
        rss = b.rss(objs, reps=3 if generated else 1)
        orc_ok = b.orc_identical(objs[0]) if generated else None
        rows.append((label, len(objs), size, text, times, rss, orc_ok))

    names = b.tool_names()
    lines = []
    lines.append(f'Machine: {machine()}.  altcfi: {a.altcfi}.  objtool: {b.objtool}.')
    lines.append(f'Times: hyperfine medians over {a.runs} runs (half that, at least 3, above 8 MiB of text), '
                 'one process per object; ratio = objtool time / altcfi time (higher is better for altcfi).')
    lines.append('')
    hdr = ['corpus', 'file KiB', 'text KiB'] + [f'{n} ms' for n in names] + \
          [f'× {n}' for n in names[1:]] + ['check µs/KiB text']
    lines.append('| ' + ' | '.join(hdr) + ' |')
    lines.append('|' + '---|' * len(hdr))
    for label, n, size, text, times, rss, orc_ok in rows:
        base = times['objtool --orc'][0]
        cells = [label, f'{size / 1024:.0f}', f'{text / 1024:.0f}']
        for nm in names:
            med, sd, mean = times[nm]
            cells.append(f'{med * 1e3:.1f} (±{100 * sd / mean:.0f}%)' if mean else f'{med * 1e3:.1f}')
        for nm in names[1:]:
            cells.append(f'{base / times[nm][0]:.2f}')
        cells.append(f'{times["check"][0] * 1e6 / (text / 1024):.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append('Peak memory (max RSS, GNU time; largest over the group\'s objects; ratio to that object\'s file size):')
    lines.append('')
    hdr = ['corpus'] + [f'{n} MiB (×size)' for n in names] + ['altcfi ORC == objtool ORC']
    lines.append('| ' + ' | '.join(hdr) + ' |')
    lines.append('|' + '---|' * len(hdr))
    for label, n, size, text, times, rss, orc_ok in rows:
        cells = [label]
        for nm in names:
            kb, osize = rss[nm]
            cells.append(f'{kb / 1024:.1f} (×{kb * 1024 / osize:.1f})')
        cells.append('—' if orc_ok is None else ('yes' if orc_ok else 'NO'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    gen = [r for r in rows if r[0].startswith('generated') and ',' not in r[0]]
    if len(gen) >= 2:
        lines.append('')
        lines.append('Growth (generated objects, time per KiB of text; constant = linear):')
        lines.append('')
        for nm in names:
            per = [f'{r[4][nm][0] * 1e6 / (r[3] / 1024):.1f}' for r in gen]
            lines.append(f'- {nm}: ' + ', '.join(f'{r[0].split()[1]} KiB → {p} µs/KiB' for r, p in zip(gen, per)))
    if not b.has_no_source:
        lines.append('')
        lines.append('(`altcfi check --no-source` does not exist in this build: only `check` with source locations.)')
    lines.append('')
    lines.append('LSP (`scripts/lsp-latency.py`: a generated `-g` object with a compile_commands.json, replaced by a '
                 'version with other conflicts; change → publishDiagnostics, and the first hover after it):')
    lines.append('')
    latency = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lsp-latency.py')
    for kb, every in a.lsp:
        log(f'LSP latency: {kb} KiB of text, a conflict in every {every} function')
        r = subprocess.run([sys.executable, latency, '--altcfi', a.altcfi, '--text-kb', str(kb),
                            '--runs', str(max(3, a.runs)), '--conflict-every', every],
                           capture_output=True, text=True)
        out = r.stdout.strip() if r.returncode == 0 else f'failed: {r.stderr.strip()[-400:]}'
        lines.append('```')
        lines.append('two versions: a conflict in every ' + 'th / every '.join(every.split(',')) + 'th function')
        lines.extend(out.splitlines())
        lines.append('```')
    # Resident memory of the language server with ten large C files of a real kernel tree open (target: ≤ 100 MB),
    # where scripts/kernel-tree.sh has built one.
    tree = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '.cache', 'kernel', 'src-6.12')
    large = ['arch/x86/kvm/x86.c', 'arch/x86/kvm/vmx/vmx.c', 'kernel/events/core.c', 'arch/x86/kvm/mmu/mmu.c',
             'arch/x86/kvm/vmx/nested.c', 'kernel/sched/core.c', 'kernel/printk/printk.c', 'kernel/rcu/tree.c',
             'kernel/cgroup/cgroup.c', 'mm/memory.c']
    lines.append('')
    if all(os.path.exists(os.path.join(tree, f)) for f in large) and a.lsp_memory:
        log('LSP memory: ten large C files of the 6.12 tree open')
        memory = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lsp-memory.py')
        r = subprocess.run([sys.executable, memory, '--altcfi', a.altcfi, '--root', tree] + large,
                           capture_output=True, text=True)
        out = r.stdout.strip() if r.returncode == 0 else f'failed: {r.stderr.strip()[-400:]}'
        lines.append('LSP memory (`scripts/lsp-memory.py`, the 6.12 tree of scripts/kernel-tree.sh, ten large C files '
                     'opened, hinted and hovered; target ≤ 100 MB resident):')
        lines.append('```')
        lines.extend(out.splitlines()[-2:])
        lines.append('```')
    else:
        lines.append('LSP memory: skipped (no kernel tree from scripts/kernel-tree.sh in .cache/kernel, or '
                     '--no-lsp-memory).')
    lines.append('')
    lines.append('Live mode (`scripts/live-latency.py`: examples/demo.S changed with didChange, never saved; the 100 ms '
                 'debounce included; a code action on its conflict with every candidate checked):')
    lines.append('')
    live = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'live-latency.py')
    log('LSP live mode: examples/demo.S')
    r = subprocess.run([sys.executable, live, '--altcfi', a.altcfi, '--runs', str(max(10, a.runs))],
                       capture_output=True, text=True)
    lines.append('```')
    lines.extend((r.stdout.strip() if r.returncode == 0 else f'failed: {r.stderr.strip()[-400:]}').splitlines())
    lines.append('```')
    # altcfi against objtool's per-object loop on the real-tree subset (IBT builds: objects objtool has not touched).
    lines.append('')
    for gen in ('6.12', '6.1'):
        build = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '.cache', 'kernel', gen + '-ibt')
        if not os.path.isdir(build):
            lines.append(f'Real tree {gen}: skipped (no {gen}-ibt build from scripts/kernel-tree.sh in .cache/kernel).')
            continue
        log(f'real tree {gen}: altcfi against the objtool loop')
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tree-bench.py'),
                            build, '--altcfi', a.altcfi, '--runs', str(max(3, a.runs // 2))],
                           capture_output=True, text=True)
        lines.append(f'Real tree {gen} (`scripts/tree-bench.py`; targets: one process ≥ 20×, one per object ≥ 2.5×):')
        lines.append('```')
        lines.extend((r.stdout.strip() if r.returncode == 0 else f'failed: {r.stderr.strip()[-400:]}').splitlines())
        lines.append('```')
    report = '\n'.join(lines) + '\n'
    with open(os.path.join(a.out, 'report.md'), 'w') as f:
        f.write(report)
    print(report)


if __name__ == '__main__':
    main()
