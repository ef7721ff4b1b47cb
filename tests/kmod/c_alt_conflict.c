// SPDX-License-Identifier: GPL-2.0
/*
 * c_alt_conflict.c — a conflicting alternative from C inline asm: the empty
 * original is padded with two nops, the replacement pushes at offset 1.
 */
#include <linux/kernel.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>
#include "kmod.h"

noinline void kmod_c_alt_conflict(void)
{
	alternative("", "push %%rax; pop %%rax", X86_FEATURE_XMM2);
}

/* A clean neighbour in the same object. */
noinline void kmod_c_alt_clean_neighbour(void)
{
	alternative("", "lfence", X86_FEATURE_LFENCE_RDTSC);
}
