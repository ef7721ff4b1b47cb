#!/usr/bin/env python3
"""scripts/gen-big-asm.py — emit a large, realistic, objtool-clean x86-64 `.S` for benchmarks.

    scripts/gen-big-asm.py --text-kb 1024 [--seed 1] -o big-1m.S
    gcc -c -I tests/fixtures/alt big-1m.S -o big-1m.o

The output includes tests/fixtures/alt/alt-macros-612.h (6.12 layout: 14-byte `.altinstructions`) and holds
functions until `.text` reaches about --text-kb KiB.  Each function has a kernel-like shape: a prologue (frame
pointer, callee-saved pushes, a stack frame, or none), a body of basic blocks (arithmetic, forward conditional
branches, counted loops, direct calls to external and earlier local/global functions, a switch jump table through
`.rodata`, `ALTERNATIVE`/`ALTERNATIVE_2` sites that keep the stack layout, static-branch NOPs with an out-of-line
slow path via `__jump_table`, a noreturn `panic()` error path), and a matching epilogue.  All functions live in one
`.text` section, so per-symbol work that scans whole sections shows up as super-linear growth.

Deterministic for a given seed and size; the code is clean for objtool 6.12 (`--orc`), so both tools do their full
work (walk + ORC generation) instead of stopping at a warning.  --conflict-every N adds one alternative stack
layout conflict to every Nth function: objtool then warns once per such function (not fatal: ORC is still written),
and altcfi has findings to map to source lines (assemble with -g).
"""

import argparse
import random
import sys

# (orig, replacement, feature): each replacement keeps the stack layout of the original at every offset.
ALTS = [
    ('call memcpy_orig', 'call memcpy_erms', 'X86_FEATURE_ERMS'),
    ('', 'lfence', 'X86_FEATURE_ALWAYS'),
    ('mov %rdi, %rax', 'mov %rsi, %rax', 'X86_FEATURE_FSRM'),
    ('xor %eax, %eax', 'mov $1, %eax', 'X86_FEATURE_CLFLUSHOPT'),
    ('call clear_page_orig', 'call clear_page_rep', 'X86_FEATURE_ERMS'),
    ('mfence', 'lock addl $0, (%rsp)', 'X86_FEATURE_ALWAYS'),
]
ALTS2 = [
    ('call copy_page_orig', 'call copy_page_rep', 'X86_FEATURE_ERMS', 'call copy_page_fsrm',
     'X86_FEATURE_FSRM'),
    ('', 'lfence', 'X86_FEATURE_ALWAYS', 'mfence', 'X86_FEATURE_CLFLUSHOPT'),
]
ARITH = [
    'mov %rdi, %rax', 'add %rsi, %rax', 'lea 0x10(%rdi,%rsi,4), %rdx', 'imul $0x1f, %rdx, %rdx',
    'xor %ecx, %ecx', 'shl $3, %rax', 'and $0xff0, %rdx', 'mov 0x8(%rdi), %rcx', 'mov %rcx, 0x10(%rdi)',
    'sub %rdx, %rax', 'test %rcx, %rcx', 'cmovne %rcx, %rax', 'movzbl (%rsi), %eax', 'inc %rdx',
    'or $0x40, %ecx', 'sar $2, %rax', 'mov %eax, 0x4(%rsi)', 'neg %rax', 'bswap %rdx', 'popcnt %rax, %rcx',
]
JCC = ['je', 'jne', 'jl', 'jg', 'jbe', 'ja', 'js', 'jns']


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.label = 0
        self.out = []
        self.rodata = []
        self.funcs = []  # (name, is_global) of emitted functions

    def lbl(self, what):
        self.label += 1
        return f'.L{what}_{self.label}'

    def emit(self, s):
        self.out.append(s)

    def arith(self, n):
        for _ in range(n):
            self.emit('\t' + self.rng.choice(ARITH))

    def block(self, tail):
        """One basic-block-ish chunk; `tail` collects out-of-line code placed after the epilogue."""
        r = self.rng.random()
        if r < 0.25:
            self.arith(self.rng.randint(2, 6))
        elif r < 0.42:
            skip = self.lbl('skip')
            self.emit(f'\tcmp ${self.rng.randint(0, 99)}, %rdi')
            self.emit(f'\t{self.rng.choice(JCC)} {skip}')
            self.arith(self.rng.randint(1, 4))
            self.emit(f'{skip}:')
        elif r < 0.52:
            loop = self.lbl('loop')
            self.emit(f'\tmov ${self.rng.randint(2, 64)}, %ecx')
            self.emit(f'{loop}:')
            self.arith(self.rng.randint(1, 3))
            self.emit('\tdec %ecx')
            self.emit(f'\tjnz {loop}')
        elif r < 0.66:
            if self.funcs and self.rng.random() < 0.6:
                name, _ = self.rng.choice(self.funcs[-200:])
            else:
                name = f'ext_fn_{self.rng.randint(0, 499)}'
            self.emit(f'\tcall {name}')
        elif r < 0.82:
            o, n, f = self.rng.choice(ALTS)
            self.emit(f'\tALTERNATIVE "{o}", "{n}", {f}')
        elif r < 0.87:
            o, n1, f1, n2, f2 = self.rng.choice(ALTS2)
            self.emit(f'\tALTERNATIVE_2 "{o}", "{n1}", {f1}, "{n2}", {f2}')
        elif r < 0.93:
            slow, back = self.lbl('slow'), self.lbl('back')
            self.emit(f'\tSTATIC_BRANCH_NOP static_key_{self.rng.randint(0, 63)}, {slow}')
            self.emit(f'{back}:')
            tail.append(f'{slow}:')
            tail.extend('\t' + self.rng.choice(ARITH) for _ in range(self.rng.randint(1, 3)))
            tail.append(f'\tjmp {back}')
        else:
            err = self.lbl('err')
            self.emit('\ttest %rax, %rax')
            self.emit(f'\tjs {err}')
            tail.append(f'{err}:')
            tail.append('\tmov %rax, %rdi')
            tail.append('\tcall panic')

    def switch(self):
        cases = self.rng.randint(3, 8)
        table, default, out = self.lbl('tab'), self.lbl('def'), self.lbl('swout')
        labels = [self.lbl('case') for _ in range(cases)]
        self.emit(f'\tcmp ${cases - 1}, %rdi')
        self.emit(f'\tja {default}')
        self.emit(f'\tjmp *{table}(,%rdi,8)')
        for c in labels:
            self.emit(f'{c}:')
            self.arith(self.rng.randint(1, 3))
            if self.rng.random() < 0.3:
                self.emit(f'\tcall ext_fn_{self.rng.randint(0, 499)}')
            self.emit(f'\tjmp {out}')
        self.emit(f'{default}:')
        self.emit('\txor %eax, %eax')
        self.emit(f'{out}:')
        self.rodata.append('\t.balign 8')
        self.rodata.append(f'{table}:')
        self.rodata.extend(f'\t.quad {c}' for c in labels)

    def function(self, i, conflict=False):
        name = f'bench_fn_{i}'
        is_global = self.rng.random() < 0.7
        self.emit('')
        self.emit(f'SYM_FUNC_START{"" if is_global else "_LOCAL"}({name})')
        shape = self.rng.random()
        if shape < 0.35:
            pro = ['push %rbp', 'mov %rsp, %rbp', 'push %rbx', 'push %r12']
            epi = ['pop %r12', 'pop %rbx', 'pop %rbp']
        elif shape < 0.6:
            pro = ['push %rbx', 'push %r12', 'push %r13']
            epi = ['pop %r13', 'pop %r12', 'pop %rbx']
        elif shape < 0.8:
            n = 8 * self.rng.randint(2, 16)
            pro = ['push %rbx', f'sub ${n}, %rsp']
            epi = [f'add ${n}, %rsp', 'pop %rbx']
        else:
            pro, epi = [], []
        for s in pro:
            self.emit('\t' + s)
        tail = []
        blocks = self.rng.randint(3, 14)
        sw = self.rng.randint(0, blocks) if self.rng.random() < 0.25 else -1
        for b in range(blocks):
            if b == sw:
                self.switch()
            self.block(tail)
            if conflict and b == 0:
                # A stack layout conflict (the padding NOP at +1 vs the pop after a push): a finding for the
                # source-location benchmark.
                self.emit('\tALTERNATIVE "nop", "push %rax; pop %rax", X86_FEATURE_XENPV')
        for s in epi:
            self.emit('\t' + s)
        self.emit('\tret')
        self.out.extend(tail)
        self.emit(f'SYM_FUNC_END({name})')
        self.funcs.append((name, is_global))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--text-kb', type=int, required=True, help='approximate .text size in KiB')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--conflict-every', type=int, default=0,
                    help='every Nth function gets one alternative stack layout conflict (0: none, the default)')
    ap.add_argument('-o', '--output', default='-')
    a = ap.parse_args()
    g = Gen(a.seed)
    g.emit('/* generated by scripts/gen-big-asm.py --text-kb %d --seed %d */' % (a.text_kb, a.seed))
    g.emit('#include "alt-macros-612.h"')
    g.emit('\t.text')
    # About 125 bytes of .text per function on average (measured with gcc 12 / binutils 2.40).
    nfuncs = max(1, a.text_kb * 1024 // 125)
    for i in range(nfuncs):
        g.function(i, a.conflict_every > 0 and i % a.conflict_every == a.conflict_every - 1)
    g.emit('')
    g.emit('\t.section .rodata')
    g.out.extend(g.rodata)
    text = '\n'.join(g.out) + '\n'
    if a.output == '-':
        sys.stdout.write(text)
    else:
        with open(a.output, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
