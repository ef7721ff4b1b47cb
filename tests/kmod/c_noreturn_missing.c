// SPDX-License-Identifier: GPL-2.0
/*
 * c_noreturn_missing.c — a call to a global __noreturn function that objtool
 * does not know about (it is neither in this object nor in objtool's
 * noreturns.h list).  gcc emits nothing after the call, so objtool follows
 * the "return" into the next function: the classic missing-__noreturn
 * warning.
 */
#include <linux/kernel.h>
#include "kmod.h"

noinline void kmod_die_if_negative(long x)
{
	if (x < 0)
		kmod_die("negative");
	pr_info("altcfi: %ld\n", x);
	kmod_die("always");
}

/* The function objtool falls into. */
noinline long kmod_after_die(long x);
noinline long kmod_after_die(long x)
{
	return x + 1;
}
