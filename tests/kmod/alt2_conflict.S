/* SPDX-License-Identifier: GPL-2.0 */
/*
 * alt2_conflict.S — ALTERNATIVE_2 whose two *replacements* disagree with
 * each other (the original, one 5-byte nop, has no inner boundary at all).
 */
#include <linux/linkage.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>

	.text

SYM_FUNC_START(kmod_alt2_conflict_replacements)
	push	%rbx
	ALTERNATIVE_2 "nopl 0x0(%rax,%rax,1)", "nop; nop; nop; nop; nop", X86_FEATURE_XMM2, \
		      "push %rax; pop %rax", X86_FEATURE_AVX2
	pop	%rbx
	RET
SYM_FUNC_END(kmod_alt2_conflict_replacements)

/* A clean function in the same file: its ORC must still be generated. */
SYM_FUNC_START(kmod_alt2_clean_neighbour)
	push	%rbx
	ALTERNATIVE_2 "call kmod_c_helper", "call kmod_c_helper_fast", X86_FEATURE_XMM2, \
		      "call kmod_c_helper_faster", X86_FEATURE_AVX2
	pop	%rbx
	RET
SYM_FUNC_END(kmod_alt2_clean_neighbour)
