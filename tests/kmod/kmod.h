/* SPDX-License-Identifier: GPL-2.0 */
/* Prototypes shared by the altcfi test objects (keeps -Wmissing-prototypes quiet). */
#ifndef ALTCFI_KMOD_H
#define ALTCFI_KMOD_H

#include <linux/compiler.h>
#include <linux/jump_label.h>
#include <linux/types.h>

DECLARE_STATIC_KEY_TRUE(kmod_key);

/* kmod_main.c — also called from the .S files */
unsigned long kmod_c_helper(unsigned long x);
unsigned long kmod_c_helper_fast(unsigned long x);
unsigned long kmod_c_helper_faster(unsigned long x);

/* c_switch.c, c_switch_ibt.c */
#ifndef KMOD_SW
#define KMOD_SW(name) name
#endif
int kmod_switch_dense(int op, int a, int b);
unsigned long kmod_switch_with_calls(unsigned int sel, unsigned long x);
int kmod_switch_dense_ibt(int op, int a, int b);
unsigned long kmod_switch_with_calls_ibt(unsigned int sel, unsigned long x);

/* c_noreturn.c */
int kmod_panic_on_zero(int x);
unsigned long kmod_bug_on_big(unsigned long x);
unsigned long kmod_calls_local_noreturn(unsigned long x);
void kmod_warn_on(unsigned long x);

/* kmod_main.c: never returns, but c_noreturn_missing.c does not know. */
void __noreturn kmod_die(const char *why);

/* c_noreturn_missing.c */
void kmod_die_if_negative(long x);

/* c_alt.c */
void kmod_c_alternative(void);
unsigned long kmod_c_alternative_io(unsigned long x);
unsigned long kmod_c_alternative_call(unsigned long x);
unsigned long kmod_c_alternative_call_2(unsigned long x);
void kmod_c_asm_ALTERNATIVE(void);
unsigned long kmod_c_static_branch(unsigned long x);
void kmod_c_barriers(unsigned long *p);

/* c_uaccess.c */
int kmod_get_user(const int __user *p, int *out);
int kmod_put_user(int __user *p, int v);
long kmod_dunder_get_user(const unsigned long __user *p);
long kmod_unsafe_get_user(const u32 __user *p, u32 *a, u32 *b);
long kmod_copy_from_user(void *dst, const void __user *src, unsigned long n);

/* c_nonstd.c, c_nonstd_missing.c */
unsigned long kmod_on_other_stack(unsigned long x, void *stack_top);
unsigned long kmod_on_other_stack_unannotated(unsigned long x, void *stack_top);

/* c_alt_conflict.c */
void kmod_c_alt_conflict(void);
void kmod_c_alt_clean_neighbour(void);

#endif
