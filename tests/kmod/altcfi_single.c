// SPDX-License-Identifier: GPL-2.0
/*
 * altcfi_single.c — a single-object module: kbuild runs objtool directly on
 * this .o (for altcfi_kmod it runs it on the linked module object).
 * Mixes a static branch, an alternative and a noreturn call.
 */
#include <linux/module.h>
#include <linux/jump_label.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>

static DEFINE_STATIC_KEY_FALSE(single_key);

static noinline unsigned long single_work(unsigned long x)
{
	if (static_branch_unlikely(&single_key))
		x *= 3;
	alternative("", "lfence", X86_FEATURE_LFENCE_RDTSC);
	if (x == 7)
		panic("altcfi_single: 7");
	return x + 1;
}

static int __init single_init(void)
{
	pr_info("altcfi_single: %lu\n", single_work(1));
	return 0;
}

module_init(single_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("altcfi single-object test module (never loaded)");
