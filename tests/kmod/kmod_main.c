// SPDX-License-Identifier: GPL-2.0
/*
 * kmod_main.c — module boilerplate plus the helpers the asm files call.
 * The module is never loaded; it only has to build.
 */
#include <linux/module.h>
#include "kmod.h"

DEFINE_STATIC_KEY_TRUE(kmod_key);

noinline unsigned long kmod_c_helper(unsigned long x)
{
	return x * 3 + 1;
}

noinline unsigned long kmod_c_helper_fast(unsigned long x)
{
	return x * 3 + 2;
}

noinline unsigned long kmod_c_helper_faster(unsigned long x)
{
	return x * 3 + 3;
}

void __noreturn kmod_die(const char *why)
{
	panic("altcfi kmod: %s", why);
}

static int __init kmod_init(void)
{
	pr_info("altcfi kmod: %lu\n", kmod_c_helper(1));
	return 0;
}

static void __exit kmod_exit(void)
{
}

module_init(kmod_init);
module_exit(kmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("altcfi test objects (never loaded)");
