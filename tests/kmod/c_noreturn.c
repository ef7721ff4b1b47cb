// SPDX-License-Identifier: GPL-2.0
/*
 * c_noreturn.c — calls to noreturn functions (panic, BUG, a local noreturn
 * helper) so the code after them is dead and ends the path.
 */
#include <linux/kernel.h>
#include <linux/panic.h>
#include <linux/bug.h>
#include <asm/processor.h>
#include "kmod.h"

noinline int kmod_panic_on_zero(int x)
{
	if (!x)
		panic("altcfi: x is zero");
	return 100 / x;
}

noinline unsigned long kmod_bug_on_big(unsigned long x)
{
	if (x > 1000)
		BUG();
	return kmod_c_helper(x);
}

/* noinline, so objtool has to find out that it never returns. */
static noinline void __noreturn kmod_local_noreturn(unsigned long why)
{
	pr_emerg("altcfi: dying %lu\n", why);
	for (;;)
		cpu_relax();
}

noinline unsigned long kmod_calls_local_noreturn(unsigned long x)
{
	if (x & 1)
		kmod_local_noreturn(x);
	return x / 2;
}

noinline void kmod_warn_on(unsigned long x)
{
	WARN_ON(x == 42);
	WARN_ON_ONCE(x == 43);
}
