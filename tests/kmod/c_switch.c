// SPDX-License-Identifier: GPL-2.0
/*
 * c_switch.c — switch statements that gcc turns into jump tables.
 *
 * kbuild passes -fno-jump-tables (retpoline/IBT); the Kbuild file re-enables
 * them for this object (CFLAGS_c_switch.o), so objtool has to find each table
 * through the .rodata relocations of the indirect jmp.  This object is built
 * with -fcf-protection=none (plain `jmp *%rax`, as in a kernel without IBT);
 * c_switch_ibt.c compiles the same code with IBT's -fcf-protection=branch,
 * which makes gcc emit `notrack jmp *%rax`.
 */
#include <linux/kernel.h>
#include <linux/compiler.h>
#include "kmod.h"

noinline int KMOD_SW(kmod_switch_dense)(int op, int a, int b)
{
	switch (op) {
	case 0: return a + b;
	case 1: return a - b;
	case 2: return a * b;
	case 3: return a ^ b;
	case 4: return a | b;
	case 5: return a & b;
	case 6: return a << (b & 7);
	case 7: return a >> (b & 7);
	case 8: return (int)kmod_c_helper(a);
	case 9: return (int)kmod_c_helper_fast(b);
	default: return -1;
	}
}

/* A second table, in a function that keeps a frame across a call. */
noinline unsigned long KMOD_SW(kmod_switch_with_calls)(unsigned int sel, unsigned long x)
{
	unsigned long r = kmod_c_helper(x);

	switch (sel) {
	case 10: r += kmod_c_helper_fast(r); break;
	case 11: r -= 7; break;
	case 12: r = kmod_c_helper_faster(r) * 2; break;
	case 13: r ^= x; break;
	case 14: r = ~r; break;
	case 15: r += kmod_c_helper(r + x); break;
	case 16: r <<= 1; break;
	default: r = 0; break;
	}
	return r + x;
}
