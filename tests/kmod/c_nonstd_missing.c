// SPDX-License-Identifier: GPL-2.0
/*
 * c_nonstd_missing.c — the c_nonstd.c function WITHOUT STACK_FRAME_NON_STANDARD;
 * objtool 6.12 is expected to complain about its stack switch ("undefined
 * stack state", which also stops it from writing any ORC for the object).
 * A single-object module of its own, so it does not spoil altcfi_kmod.o.
 */
#include <linux/module.h>
#include <linux/objtool.h>
#include "kmod.h"

/* Local helper: kmod_c_helper is in another module and is not exported. */
static noinline __used unsigned long kmod_nonstd_missing_helper(unsigned long x)
{
	return x + 11;
}

noinline unsigned long kmod_on_other_stack_unannotated(unsigned long x, void *stack_top)
{
	unsigned long saved;

	asm volatile("mov %%rsp, %[saved]\n\t"
		     "mov %[top], %%rsp\n\t"
		     "call kmod_nonstd_missing_helper\n\t"
		     "mov %[saved], %%rsp"
		     : [saved] "=&r" (saved), "+D" (x), "=a" (x)
		     : [top] "r" (stack_top)
		     : "memory", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11");
	return x;
}

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("altcfi: unannotated stack switch (never loaded)");
