// SPDX-License-Identifier: GPL-2.0
/*
 * c_uaccess.c — user accesses: get_user()/put_user() (calls to the
 * __get_user_N helpers), __get_user() and unsafe_get_user() (inline asm with
 * _ASM_EXTABLE_UA entries), STAC/CLAC alternatives, copy_from_user().
 */
#include <linux/kernel.h>
#include <linux/uaccess.h>
#include "kmod.h"

noinline int kmod_get_user(const int __user *p, int *out)
{
	return get_user(*out, p);
}

noinline int kmod_put_user(int __user *p, int v)
{
	return put_user(v, p);
}

noinline long kmod_dunder_get_user(const unsigned long __user *p)
{
	unsigned long v;

	if (__get_user(v, p))
		return -EFAULT;
	return v;
}

noinline long kmod_unsafe_get_user(const u32 __user *p, u32 *a, u32 *b)
{
	if (!user_access_begin(p, 2 * sizeof(*p)))
		return -EFAULT;
	unsafe_get_user(*a, p, efault);
	unsafe_get_user(*b, p + 1, efault);
	user_access_end();
	return 0;
efault:
	user_access_end();
	return -EFAULT;
}

noinline long kmod_copy_from_user(void *dst, const void __user *src, unsigned long n)
{
	if (copy_from_user(dst, src, n))
		return -EFAULT;
	return 0;
}
