#!/usr/bin/env python3
"""scripts/tree-bench.py — altcfi against objtool on the objects of a real kernel build, timed.

    python3 scripts/tree-bench.py BUILD [--altcfi target/release/altcfi] [--standard-from NOIBT_BUILD] [--runs 3]

BUILD is an IBT build of scripts/kernel-tree.sh (objtool is delayed to vmlinux.o there, so its objects are as the
compiler left them); --standard-from, the same tree's IBT-off build, whose `.cmd` files say which objects kbuild
validates (default: BUILD with `-ibt` replaced by `-noibt`). For those objects it times, each --runs times (median):

- objtool's per-object loop, as kbuild runs it: the tree's own objtool, one process per object, with the arguments
  scripts/Makefile.lib builds (on fresh copies made before the clock starts);
- `altcfi check` once over all of them (its threads on every core; and with -j 1);
- `altcfi check` once per object, one process each, as a build step would run it.

altcfi gets no option: it finds the tree, the rules and objtool's arguments itself. Prints the medians and the
ratios against the objtool loop; the last line is machine-readable.
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('kernel_diff', os.path.join(here, 'kernel-diff.py'))
kd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kd)


def validated(build, standard):
    """Objects (relative paths) of BUILD whose twin in STANDARD kbuild ran objtool on with stack validation."""
    out = []
    for root, _, files in os.walk(standard):
        for f in files:
            if not f.endswith('.o') or f.endswith('.mod.o'):
                continue
            rel = os.path.relpath(os.path.join(root, f), standard)
            line = kd.first_cmd_line(os.path.join(standard, rel))
            m = kd.OBJTOOL_IN_CMD.search(line or '')
            if m and {'--orc', '--stackval', '--uaccess'} & set(m.group(1).split()) \
                    and os.path.exists(os.path.join(build, rel)):
                out.append(rel)
    return sorted(out)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build')
    ap.add_argument('--altcfi', default=os.path.join(here, '..', 'target', 'release', 'altcfi'))
    ap.add_argument('--standard-from')
    ap.add_argument('--runs', type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    standard = os.path.abspath(a.standard_from or build.replace('-ibt', '-noibt'))
    altcfi = os.path.abspath(a.altcfi)
    objtool = os.path.join(build, 'tools/objtool/objtool')
    objs = validated(build, standard)
    if not objs:
        sys.exit(f'tree-bench: no validated objects in {build} (standard: {standard})')
    args = kd.kbuild_objtool_args(kd.read_auto_conf(build))
    paths = [os.path.join(build, o) for o in objs]
    size = sum(os.path.getsize(p) for p in paths)

    def objtool_loop():
        with tempfile.TemporaryDirectory() as tmp:
            copies = []
            for i, p in enumerate(paths):
                c = os.path.join(tmp, f'{i}-{os.path.basename(p)}')
                shutil.copyfile(p, c)
                copies.append(c)
            t = time.perf_counter()
            for c in copies:
                subprocess.run([objtool] + args + [c], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - t

    def altcfi_once(extra):
        return timed(lambda: subprocess.run([altcfi, 'check', *extra, *paths], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))

    def altcfi_each():
        return timed(lambda: [subprocess.run([altcfi, 'check', p], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL) for p in paths])

    runs = {'objtool loop': [], 'altcfi check, one process': [], 'altcfi check -j 1, one process': [],
            'altcfi check, one process per object': []}
    for _ in range(a.runs):
        runs['objtool loop'].append(objtool_loop())
        runs['altcfi check, one process'].append(altcfi_once([]))
        runs['altcfi check -j 1, one process'].append(altcfi_once(['-j', '1']))
        runs['altcfi check, one process per object'].append(altcfi_each())
    med = {k: statistics.median(v) for k, v in runs.items()}
    base = med['objtool loop']
    print(f'{len(objs)} objects validated by kbuild, {size / 1024 / 1024:.1f} MiB, objtool {" ".join(args)}; '
          f'medians of {a.runs} runs ({os.cpu_count()} cores)')
    for k, v in med.items():
        print(f'  {k:40s} {v * 1000:8.0f} ms  ×{base / v:.1f}')
    print('objects={} objtool_ms={:.0f} one_ms={:.0f} one_j1_ms={:.0f} each_ms={:.0f} x_one={:.1f} x_j1={:.1f} '
          'x_each={:.1f}'.format(len(objs), base * 1000, med['altcfi check, one process'] * 1000,
                                 med['altcfi check -j 1, one process'] * 1000,
                                 med['altcfi check, one process per object'] * 1000,
                                 base / med['altcfi check, one process'], base / med['altcfi check -j 1, one process'],
                                 base / med['altcfi check, one process per object']))


if __name__ == '__main__':
    sys.exit(main())
