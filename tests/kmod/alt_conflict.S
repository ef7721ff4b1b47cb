/* SPDX-License-Identifier: GPL-2.0 */
/*
 * alt_conflict.S — deliberate "stack layout conflict in alternatives":
 * one function per conflict, since objtool stops at a function's first
 * warning.
 */
#include <linux/linkage.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>

	.text

/*
 * Empty original: __ALTERNATIVE pads it with two 0x90 nops, so offset 1 is a
 * boundary at depth 0 in the original and depth 8 in the replacement.
 */
SYM_FUNC_START(kmod_alt_conflict_padding)
	ALTERNATIVE "", "push %rax; pop %rax", X86_FEATURE_XMM2
	RET
SYM_FUNC_END(kmod_alt_conflict_padding)

/* The push is in the original; the replacement is two nops. */
SYM_FUNC_START(kmod_alt_conflict_orig_push)
	ALTERNATIVE "push %rbx; pop %rbx", "nop; nop", X86_FEATURE_XMM2
	RET
SYM_FUNC_END(kmod_alt_conflict_orig_push)

/*
 * Same depth at offset 2 (8 in both), but the saved register differs: rbx in
 * the original, r12 in the replacement (both callee-saved, so objtool
 * records them).
 */
SYM_FUNC_START(kmod_alt_conflict_saved_reg)
	ALTERNATIVE "push %rbx; nop; pop %rbx; nop", "push %r12; pop %r12", X86_FEATURE_XMM2
	RET
SYM_FUNC_END(kmod_alt_conflict_saved_reg)

/*
 * Rbp-based frame: the CFA rule (bp+16) is the same at offset 1 in both,
 * only the stack depth differs.
 */
SYM_FUNC_START(kmod_alt_conflict_bp_frame)
	push	%rbp
	mov	%rsp, %rbp
	ALTERNATIVE "", "push %rax; pop %rax", X86_FEATURE_XMM2
	pop	%rbp
	RET
SYM_FUNC_END(kmod_alt_conflict_bp_frame)
