// SPDX-License-Identifier: GPL-2.0
/*
 * c_alt.c — alternatives and jump labels from C: alternative(),
 * alternative_io(), alternative_call(), alternative_call_2(), ALTERNATIVE in
 * plain inline asm, static_branch_likely()/unlikely().
 */
#include <linux/kernel.h>
#include <linux/jump_label.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>
#include <asm/barrier.h>
#include "kmod.h"

DEFINE_STATIC_KEY_FALSE(kmod_key_false);

noinline void kmod_c_alternative(void)
{
	alternative("", "lfence", X86_FEATURE_LFENCE_RDTSC);
}

noinline unsigned long kmod_c_alternative_io(unsigned long x)
{
	unsigned long r = x;

	alternative_io("shl $1, %0", "add %0, %0", X86_FEATURE_XMM2,
		       "+r" (r), "r" (x));
	return r;
}

noinline unsigned long kmod_c_alternative_call(unsigned long x)
{
	unsigned long ret;

	alternative_call(kmod_c_helper, kmod_c_helper_fast, X86_FEATURE_XMM2,
			 "=a" (ret), "D" (x) : "memory", "rsi", "rdx", "rcx",
			 "r8", "r9", "r10", "r11");
	return ret + 1;
}

noinline unsigned long kmod_c_alternative_call_2(unsigned long x)
{
	unsigned long ret;

	alternative_call_2(kmod_c_helper, kmod_c_helper_fast, X86_FEATURE_XMM2,
			   kmod_c_helper_faster, X86_FEATURE_AVX2,
			   "=a" (ret), "D" (x) : "memory", "rsi", "rdx", "rcx",
			   "r8", "r9", "r10", "r11");
	return ret + 2;
}

noinline void kmod_c_asm_ALTERNATIVE(void)
{
	asm volatile(ALTERNATIVE("", "mfence", X86_FEATURE_XMM2) ::: "memory");
}

noinline unsigned long kmod_c_static_branch(unsigned long x)
{
	if (static_branch_likely(&kmod_key))
		x = kmod_c_helper(x);
	if (static_branch_unlikely(&kmod_key_false))
		x = kmod_c_helper_fast(x);
	return x + 5;
}

noinline void kmod_c_barriers(unsigned long *p)
{
	mb();
	WRITE_ONCE(*p, 1);
	rmb();
}
