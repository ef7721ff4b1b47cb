// SPDX-License-Identifier: GPL-2.0
/*
 * c_nonstd.c — STACK_FRAME_NON_STANDARD: a function objtool must skip, whose
 * inline asm switches the stack pointer to a value objtool cannot track.
 * The twin without the annotation lives in c_nonstd_missing.c.
 */
#include <linux/kernel.h>
#include <linux/objtool.h>
#include "kmod.h"

noinline unsigned long kmod_on_other_stack(unsigned long x, void *stack_top)
{
	unsigned long saved;

	asm volatile("mov %%rsp, %[saved]\n\t"
		     "mov %[top], %%rsp\n\t"
		     "call kmod_c_helper\n\t"
		     "mov %[saved], %%rsp"
		     : [saved] "=&r" (saved), "+D" (x), "=a" (x)
		     : [top] "r" (stack_top)
		     : "memory", "rsi", "rdx", "rcx", "r8", "r9", "r10", "r11");
	return x;
}
STACK_FRAME_NON_STANDARD(kmod_on_other_stack);
